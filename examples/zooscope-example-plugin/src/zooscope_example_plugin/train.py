"""Train the example MLP deterministically on the zoo's MNIST split and write its safetensors and card.

    python -m zooscope_example_plugin.train
"""

from __future__ import annotations

import json
import time

import torch
from safetensors.torch import save_file

from . import WEIGHTS
from .mlp import DigitMLP, MLPConfig


def train(epochs: int = 15, seed: int = 0) -> dict:
    from model_zoo import load_split

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    split = load_split()
    x = torch.from_numpy(split.x_train).float().div(255).unsqueeze(1)
    y = torch.from_numpy(split.y_train).long()
    model = DigitMLP(MLPConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            loss = torch.nn.functional.cross_entropy(model.scores(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    xh, yh = split.heldout_tensor()
    with torch.no_grad():
        acc = float((model.scores(xh).argmax(1) == yh).float().mean())
    WEIGHTS.mkdir(exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(WEIGHTS / "example-mlp.safetensors"))
    card = {"metrics": {"accuracy": round(acc, 4)}, "split": split.name, "split_sha256": split.sha256,
            "epochs": epochs, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            "parameters": sum(p.numel() for p in model.parameters()), "heldout_examples": int(len(yh))}
    (WEIGHTS / "example-mlp.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


if __name__ == "__main__":
    print(json.dumps(train(), indent=2))
