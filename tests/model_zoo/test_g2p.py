"""G2P on CMUdict: the monotonic attention maths against brute force, hard decoding's properties, the online
property, training, the split, and the shipped checkpoints' recorded metrics."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from model_zoo import get_spec
from model_zoo.g2p import (
    CHARS, EOS, PAD, G2P, G2PConfig, G2PInputError, encode_word, expected_alignment, load_g2p_split,
    safe_cumprod_exclusive,
)
from model_zoo.spec import CHECKPOINT_DIR, TrainRecipe

MODELS = ("g2p-soft", "g2p-monotonic")
WORDS = ("phoenix", "zooscope", "knight", "through", "xylophone", "cat", "antidisestablish", "qwrtpl")


def shipped(name: str) -> bool:
    spec = get_spec(name)
    return spec.checkpoint_path.exists() and "per" in spec.metrics


def load_shipped(name: str) -> G2P:
    if not shipped(name):
        pytest.skip(f"{name} is not trained yet (zooscope train {name})")
    from model_zoo import load
    return load(name, "cpu")


# --------------------------------------------------------------------------- monotonic attention maths


def brute_force_alignment(p: torch.Tensor) -> torch.Tensor:
    """Sum over every monotonic path: at step i, scan from the last position, stop at j with prob p_ij; a scan that
    runs off the end attends nowhere from then on."""
    U, T = p.shape
    out = torch.zeros(U, T, dtype=torch.float64)

    def walk(i: int, start: int, prob: float) -> None:
        if i == U:
            return
        stay = 1.0
        for j in range(start, T):
            here = prob * stay * float(p[i, j])
            out[i, j] += here
            walk(i + 1, j, here)
            stay *= 1 - float(p[i, j])

    walk(0, 0, 1.0)
    return out


@pytest.mark.parametrize("U,T,seed", [(1, 1, 0), (1, 4, 1), (2, 3, 2), (3, 4, 3), (4, 3, 4), (4, 5, 5)])
def test_the_parallel_recurrence_equals_the_sum_over_all_monotonic_alignments(U, T, seed):
    gen = torch.Generator().manual_seed(seed)
    p = torch.rand(U, T, generator=gen, dtype=torch.float64)
    prev = torch.zeros(1, T, dtype=torch.float64)
    prev[0, 0] = 1.0  # alpha_0 = delta_1
    rows = []
    for i in range(U):
        prev = expected_alignment(p[i: i + 1], prev)
        rows.append(prev[0])
    assert torch.allclose(torch.stack(rows), brute_force_alignment(p), atol=1e-12)


def test_safe_cumprod_stays_finite_when_a_probability_is_one():
    p = torch.tensor([[0.2, 1.0, 0.5, 0.3]], dtype=torch.float64)
    cp = safe_cumprod_exclusive(1 - p)
    assert torch.isfinite(cp).all() and cp[0, 0] == 1.0 and cp[0, 2] <= 1e-9
    a = expected_alignment(p, torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64))
    assert torch.isfinite(a).all()
    assert torch.allclose(a, brute_force_alignment(p)[0:1], atol=1e-9)  # the mass stops at position 2


# --------------------------------------------------------------------------- hard decoding


def tiny(attention: str, r: float = 0.0, seed: int = 0) -> G2P:
    torch.manual_seed(seed)
    model = G2P(G2PConfig(attention=attention, emb=8, hidden=16, attn_dim=8)).eval()
    if attention == "monotonic":
        with torch.no_grad():
            model.r.fill_(r)
            model.g.fill_(3.0)
    return model


@pytest.mark.parametrize("r", [-1.0, 0.0, 1.0])
def test_hard_alignment_never_moves_back_and_each_row_sums_to_at_most_one(r):
    for seed in range(3):
        model = tiny("monotonic", r, seed)
        for word in WORDS:
            out = model.decode(encode_word(word), force_len=12)
            a = out.alignment
            assert ((a == 0) | (a == 1)).all() and (a.sum(1) <= 1).all()
            pos = out.positions
            attended = [p for p in pos if p >= 0]
            assert attended == sorted(attended)
            if -1 in pos:  # once it attends nowhere, it stays nowhere
                assert all(p == -1 for p in pos[pos.index(-1):])


def test_shipped_monotonic_alignments_move_forward_on_words():
    model = load_shipped("g2p-monotonic")
    for word in WORDS:
        out = model.decode(encode_word(word))
        attended = [p for p in out.positions if p >= 0]
        assert attended == sorted(attended) and (out.alignment.sum(1) <= 1).all()


@pytest.mark.parametrize("attention", ["soft", "monotonic"])
def test_batched_decoding_says_what_word_by_word_decoding_says(attention):
    model = tiny(attention, 0.5)
    words = ["phoenix", "cat", "through", "qwrtpl"]
    x = torch.nn.utils.rnn.pad_sequence([torch.tensor(encode_word(w)) for w in words], batch_first=True,
                                        padding_value=PAD)
    batched = model.decode_batch(x, max_len=20)
    for w, b in zip(words, batched):
        assert model.decode(encode_word(w), max_len=20).phones == b


def test_monotonic_decoding_is_online():
    """The output up to step i does not change when the letters after its attended position (plus the encoder's
    fixed lookahead of k letters) change."""
    model = load_shipped("g2p-monotonic")
    k = model.cfg.lookahead
    gen = torch.Generator().manual_seed(0)
    checked = 0
    for word in WORDS:
        chars = encode_word(word)
        out = model.decode(chars)
        for i, t in enumerate(out.positions):
            seen = t + 1 + k  # letters the output so far depends on
            if t < 0 or seen >= len(chars):
                continue
            tail = torch.randint(2, len(CHARS), (len(chars) - seen + int(torch.randint(0, 3, (1,), generator=gen)),),
                                 generator=gen).tolist()
            changed = model.decode(chars[:seen] + tail)
            assert changed.phones[: i + 1] == out.phones[: i + 1], (word, i)
            assert changed.positions[: i + 1] == out.positions[: i + 1], (word, i)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("k", [0, 2])
def test_the_encoder_reads_exactly_k_letters_ahead(k):
    torch.manual_seed(0)
    model = G2P(G2PConfig(attention="monotonic", emb=8, hidden=16, attn_dim=8, lookahead=k)).eval()
    a, b = encode_word("phoenix"), encode_word("phoezzz")  # differ from letter 5 on
    ha = model.encode_embedded(model.embed(torch.tensor([a])))[0]
    hb = model.encode_embedded(model.embed(torch.tensor([b])))[0]
    same = [bool(torch.allclose(ha[0, j], hb[0, j])) for j in range(7)]
    assert same == [j + k < 4 for j in range(7)]


def test_soft_attention_is_not_online():
    """The same check fails for soft attention: it reads the whole word at every step (the test can fail)."""
    model = tiny("soft")
    chars = encode_word("phoenix")
    assert not torch.equal(model.decode(chars, force_len=3).probs, model.decode(chars[:2] + encode_word("zzzzz"),
                                                                                force_len=3).probs)


def test_energy_evaluations_are_linear_for_monotonic_and_quadratic_for_soft():
    chars = encode_word("abcdefghij" * 4)
    mono = tiny("monotonic", 0.0).decode(chars, force_len=len(chars))
    soft = tiny("soft").decode(chars, force_len=len(chars))
    assert mono.energy_evaluations <= 2 * len(chars)
    assert soft.energy_evaluations == len(chars) ** 2


# --------------------------------------------------------------------------- data and training


def test_the_split_is_by_word_named_and_hashed():
    split = load_g2p_split()
    train_words = {w for w, _ in split.train}
    held = {w for w, _ in split.heldout}
    assert not train_words & held
    assert len(train_words) > 100_000 and 5_000 < len(held) < 8_000
    assert split.name.startswith("cmudict/") and len(split.sha256) == 64
    assert all(2 <= len(w) <= 15 for w in list(train_words)[:1000])
    spec = get_spec("g2p-soft")
    if shipped("g2p-soft"):
        assert spec.card["split"] == split.name and spec.card["split_sha256"] == split.sha256


def test_training_lowers_the_loss():
    from model_zoo.g2p_training import fit_g2p, loss_on, make_batch

    spec = dataclasses.replace(get_spec("g2p-monotonic"), config=G2PConfig("monotonic", emb=16, hidden=32, attn_dim=16))
    split = load_g2p_split()
    words = split.train[:2000:4]  # 500 words
    x, y_in, y_out = make_batch(words, list(range(64)))
    torch.manual_seed(0)
    before = loss_on(spec.builder(spec.config).eval(), x, y_in, y_out, None, noise=False).item()
    model, losses = fit_g2p(spec, split, TrainRecipe(epochs=1, lr=1e-2, batch_size=32), progress=False,
                            max_steps=48, words=words)
    after = loss_on(model, x, y_in, y_out, None, noise=False).item()
    assert after < before - 0.5, (before, after, losses)


@pytest.mark.parametrize("bad", ["", "h3llo", "two words", "é"])
def test_a_word_the_models_cannot_read_is_one_clear_error(bad):
    with pytest.raises(G2PInputError, match="letters a-z|type a word"):
        encode_word(bad)


# --------------------------------------------------------------------------- shipped checkpoints


@pytest.mark.parametrize("name", MODELS)
def test_shipped_checkpoints_reproduce_their_recorded_metrics(name):
    from model_zoo.g2p_training import SUBSET, evaluate_g2p

    model = load_shipped(name)
    card = get_spec(name).card
    assert card["checkpoint"] == f"{name}.safetensors"
    assert (CHECKPOINT_DIR / card["checkpoint"]).stat().st_size <= 10 * 1024 * 1024
    measured = evaluate_g2p(model, load_g2p_split(), limit=SUBSET)
    assert measured == pytest.approx(card[f"metrics_first_{SUBSET}"], abs=1e-4)


def test_the_shipped_models_meet_the_floors():
    if not all(shipped(n) for n in MODELS):
        pytest.skip("the G2P models are not trained yet")
    soft, mono = get_spec("g2p-soft").metrics, get_spec("g2p-monotonic").metrics
    assert soft["per"] <= 0.12 and soft["wer"] <= 0.45, soft
    assert mono["per"] <= soft["per"] + 0.02, (soft, mono)


def test_models_json_shows_the_metrics(capsys):
    if not shipped("g2p-soft"):
        pytest.skip("g2p-soft is not trained yet")
    from app.cli.main import main

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    rows = rows if isinstance(rows, list) else list(rows.values())
    g2p = [r for r in rows if r.get("name") in MODELS]
    assert g2p and all("per" in r["metrics"] and "wer" in r["metrics"] for r in g2p)


def test_eos_is_a_token_the_decoder_can_say():
    assert EOS == 2 and CHARS[0] == "<pad>"
