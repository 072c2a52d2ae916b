"""Every hostile folder is refused with one clear message, before anything is allocated, and its payload never runs."""

from __future__ import annotations

import json
import pickle
import struct
import sys
import time
from pathlib import Path

import pytest

import model_zoo
from model_zoo import ModelSourceError, sources
from tests.hf_fixtures import tiny_bert_classifier_folder, tiny_vit_folder


@pytest.fixture(autouse=True)
def _clean():
    sources.forget_all()
    yield
    sources.forget_all()


class Payload:
    """Unpickling this writes a marker file: if the marker ever exists, a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def refused(folder: Path, *words: str) -> str:
    with pytest.raises(ModelSourceError) as e:
        sources.folder_spec(folder)
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    # the registry records the same refusal instead of raising
    assert model_zoo.register_folders([folder]) == []
    assert any(words[0].lower() in m.lower() for m in model_zoo.model_problems().values())
    return msg


def test_pickle_only_weights_are_refused_and_never_unpickled(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "marker.txt"
    for name in ("pytorch_model.bin", "weights.pt", "model.ckpt", "extra.pkl"):
        (folder / name).write_bytes(pickle.dumps(Payload(marker)))
    msg = refused(folder, "pytorch_model.bin", "pickle")
    assert "safetensors" in msg
    with pytest.raises(ModelSourceError):
        model_zoo.resolve_model(str(folder))
    assert not marker.exists()


def test_a_pickle_beside_safetensors_is_never_opened(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    marker = tmp_path / "marker.txt"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    (folder / "training_args.bin").write_bytes(pickle.dumps(Payload(marker)))
    name = model_zoo.resolve_model(str(folder))
    model = model_zoo.load(name, "cpu")
    assert model.scores(model.preprocess(__import__("PIL.Image").Image.new("RGB", (40, 40)))[None]).shape == (1, 3)
    assert not marker.exists()


def _remote_code(folder: Path, marker: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForImageClassification": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('pwned')\n")


def test_auto_map_and_python_files_are_refused_and_never_imported(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    marker = tmp_path / "imported.txt"
    _remote_code(folder, marker)
    refused(folder, "evil.py", "remote code")
    (folder / "evil.py").unlink()  # auto_map alone (the code elsewhere) is refused too
    refused(folder, "auto_map", "remote code")
    assert not marker.exists() and "evil" not in sys.modules


def test_auto_map_in_the_tokenizer_config_is_refused(tmp_path):
    folder = tiny_bert_classifier_folder(tmp_path)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["evil.Tok", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    refused(folder, "tokenizer_config.json", "auto_map")


def _header_file(path: Path, header: dict, data: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_a_header_claiming_4_tb_with_64_bytes_behind_it_is_refused_in_under_a_second(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    _header_file(folder / "model.safetensors",
                 {"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4 << 40]}}, b"\0" * 64)
    t = time.perf_counter()
    msg = refused(folder, "model.safetensors", "truncated")
    assert time.perf_counter() - t < 1.0
    assert "4.0 TB" in msg


def test_a_config_asking_for_terabytes_is_refused_in_under_a_second(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(hidden_size=1 << 16, intermediate_size=1 << 18, num_attention_heads=2, num_hidden_layers=24)
    (folder / "config.json").write_text(json.dumps(cfg))
    t = time.perf_counter()
    msg = refused(folder, "memory")
    assert time.perf_counter() - t < 1.0
    assert " TB" in msg


def test_truncated_weights_are_refused_naming_the_file(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    refused(folder, "model.safetensors", "truncated", "copy the weights again")


def test_a_header_length_over_the_cap_and_a_non_json_header_are_refused(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    refused(folder, "model.safetensors", "header claims")
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 4) + b"nope")
    refused(folder, "model.safetensors", "not json")


def test_overlapping_tensor_ranges_are_refused(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    _header_file(folder / "model.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                                "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8)
    refused(folder, "model.safetensors", "overlap")


def test_a_config_that_does_not_fit_the_weights_names_the_tensors(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {str(i): f"c{i}" for i in range(5)}
    cfg["label2id"] = {f"c{i}": i for i in range(5)}
    (folder / "config.json").write_text(json.dumps(cfg))
    refused(folder, "config.json does not match", "classifier")


def test_a_missing_tokenizer_or_image_processor_says_what_to_save(tmp_path):
    vit = tiny_vit_folder(tmp_path)
    (vit / "preprocessor_config.json").unlink()
    refused(vit, "preprocessor_config.json", "save_pretrained")
    bert = tiny_bert_classifier_folder(tmp_path)
    for name in ("tokenizer.json", "vocab.txt"):
        (bert / name).unlink()
    refused(bert, "tokenizer", "save_pretrained")


@pytest.mark.parametrize("text, words", [
    ('{"hello": "world"}', ("config.json", "not a model config")),
    ("[1, 2, 3]", ("config.json", "not a model config")),
    ("{not json", ("config.json", "not readable json")),
    ('{"model_type": "no-such-architecture"}', ("config.json", "transformers knows")),
])
def test_a_config_that_is_not_a_model_config_is_refused(tmp_path, text, words):
    folder = tiny_vit_folder(tmp_path)
    (folder / "config.json").write_text(text)
    refused(folder, *words)


def test_links_pointing_outside_the_folder_are_refused(tmp_path):
    folder = tiny_vit_folder(tmp_path)
    outside = tmp_path / "outside.json"
    outside.write_text((folder / "config.json").read_text())
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to(outside)
    refused(folder, "config.json", "outside the model folder")


def test_a_path_that_is_no_folder_is_one_clear_message(tmp_path):
    with pytest.raises(ModelSourceError, match="not a folder"):
        model_zoo.resolve_model(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        model_zoo.resolve_model(str(empty))
