"""Tiny Hugging Face model folders built from configs, never downloaded (issue 17's shared fixtures).

Each function writes a folder the way ``save_pretrained(..., safe_serialization=True)`` does (config.json,
model.safetensors, tokenizer or image processor files) under ``tmp_path`` and returns it. The models have
random weights under a fixed seed, two layers and hidden size 32: they load, run and are explained in
milliseconds on one CPU thread. Use them as::

    from tests.hf_fixtures import tiny_vit_folder
    folder = tiny_vit_folder(tmp_path)          # tmp_path / "tiny-vit"
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

IMAGE_LABELS = {0: "cat", 1: "dog", 2: "bird"}
TEXT_LABELS = {0: "negative", 1: "positive"}
SENTENCES = [
    "the film was a delight from start to finish",
    "a dull and lifeless movie that never ends",
    "great acting and a clever plot",
    "the worst picture of the year , sadly",
    "i loved every minute of it !",
    "boring , slow and far too long",
    "hello world this is a tiny tokenizer",
]
WORDS = sorted({w for s in SENTENCES for w in s.split()})
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _seed() -> None:
    torch.manual_seed(0)


def _save(model, folder: Path, readme: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    if readme:
        (folder / "README.md").write_text(readme)
    return folder


def _wordpiece_tokenizer(folder: Path):
    """A WordPiece (BERT) tokenizer over the words of SENTENCES plus a few ## pieces."""
    from transformers import BertTokenizer

    pieces = ["##s", "##ing", "##ed", "##ly", "un", "##able"]
    vocab = BERT_SPECIALS + WORDS + pieces + list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys(vocab))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.model_max_length = 64
    return tok


def _bpe_tokenizer(kind: str):
    """A byte-level BPE tokenizer trained on SENTENCES, wrapped as RoBERTa, GPT-2 or a generic fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer

    specials = {"roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                "gpt2": ["<|endoftext|>"],
                "t5": ["<pad>", "</s>", "<unk>"]}[kind]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 4, vocab_size=500, min_frequency=1, special_tokens=specials, show_progress=False)
    from transformers import PreTrainedTokenizerFast

    if kind == "roberta":
        from tokenizers.processors import RobertaProcessing

        bpe._tokenizer.post_processor = RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
        return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                       unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                       cls_token="<s>", sep_token="</s>", model_max_length=64)
    if kind == "gpt2":
        return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                       eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                                       pad_token="<|endoftext|>", model_max_length=64)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", model_max_length=64)


def tiny_vit_folder(tmp_path: Path, name: str = "tiny-vit", channels: int = 3, image_size: int = 32) -> Path:
    """A ViTForImageClassification (2 layers, 2 heads, 8x8 patches) with a ViT image processor; 3 labels."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    _seed()
    cfg = ViTConfig(image_size=image_size, patch_size=8, num_channels=channels, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=37, num_labels=3, id2label=dict(IMAGE_LABELS),
                    label2id={v: k for k, v in IMAGE_LABELS.items()})
    folder = _save(ViTForImageClassification(cfg), tmp_path / name,
                   readme=f"# {name}\n\nA tiny ViT image classifier for tests (cat / dog / bird).\n")
    mean, std = ([0.5] * channels, [0.5] * channels)
    ViTImageProcessor(size={"height": image_size, "width": image_size}, image_mean=mean, image_std=std).save_pretrained(folder)
    return folder


def tiny_gray_vit_folder(tmp_path: Path, name: str = "tiny-vit-gray") -> Path:
    """The tiny ViT on one grey channel at 28x28 (patch 7)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    _seed()
    cfg = ViTConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=37, num_labels=3, id2label=dict(IMAGE_LABELS),
                    label2id={v: k for k, v in IMAGE_LABELS.items()})
    folder = _save(ViTForImageClassification(cfg), tmp_path / name)
    ViTImageProcessor(size={"height": 28, "width": 28}, image_mean=[0.5], image_std=[0.5]).save_pretrained(folder)
    return folder


def tiny_resnet_folder(tmp_path: Path, name: str = "tiny-resnet") -> Path:
    """A ResNetForImageClassification (no attention) at 32x32 with a ConvNeXt-style image processor; 3 labels."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    _seed()
    cfg = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                       num_labels=3, id2label=dict(IMAGE_LABELS), label2id={v: k for k, v in IMAGE_LABELS.items()})
    folder = _save(ResNetForImageClassification(cfg), tmp_path / name)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(folder)
    return folder


def tiny_bert_classifier_folder(tmp_path: Path, name: str = "tiny-bert-sentiment") -> Path:
    """A BertForSequenceClassification (2 layers, 2 heads) with a WordPiece tokenizer; negative/positive."""
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path / name
    tok = _wordpiece_tokenizer(folder)
    _seed()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, max_position_embeddings=64, num_labels=2, id2label=dict(TEXT_LABELS),
                     label2id={v: k for k, v in TEXT_LABELS.items()}, pad_token_id=0)
    _save(BertForSequenceClassification(cfg), folder, readme=f"# {name}\n\nA tiny BERT sentiment classifier for tests.\n")
    tok.save_pretrained(folder)
    return folder


def tiny_distilbert_classifier_folder(tmp_path: Path, name: str = "tiny-distilbert") -> Path:
    """A DistilBertForSequenceClassification with the WordPiece tokenizer; negative/positive."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    folder = tmp_path / name
    tok = _wordpiece_tokenizer(folder)
    _seed()
    cfg = DistilBertConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=2, hidden_dim=37,
                           max_position_embeddings=64, num_labels=2, id2label=dict(TEXT_LABELS),
                           label2id={v: k for k, v in TEXT_LABELS.items()}, pad_token_id=0)
    _save(DistilBertForSequenceClassification(cfg), folder)
    tok.save_pretrained(folder)
    return folder


def tiny_roberta_classifier_folder(tmp_path: Path, name: str = "tiny-roberta-sentiment") -> Path:
    """A RobertaForSequenceClassification with a byte-level BPE tokenizer (Ġ pieces); negative/positive."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    tok = _bpe_tokenizer("roberta")
    _seed()
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=70, num_labels=2, id2label=dict(TEXT_LABELS),
                        label2id={v: k for k, v in TEXT_LABELS.items()}, pad_token_id=tok.pad_token_id,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, type_vocab_size=1)
    folder = _save(RobertaForSequenceClassification(cfg), tmp_path / name)
    tok.save_pretrained(folder)
    return folder


def tiny_sentence_encoder_folder(tmp_path: Path, name: str = "tiny-sentence-encoder") -> Path:
    """A BertModel with WordPiece tokenizer and a sentence-transformers mean-pooling config (1_Pooling/)."""
    import json

    from transformers import BertConfig, BertModel

    folder = tmp_path / name
    tok = _wordpiece_tokenizer(folder)
    _seed()
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, max_position_embeddings=64, pad_token_id=0)
    _save(BertModel(cfg, add_pooling_layer=False), folder)
    tok.save_pretrained(folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": 32, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    return folder


def tiny_t5_folder(tmp_path: Path, name: str = "tiny-t5") -> Path:
    """A T5ForConditionalGeneration (seq2seq, 2+2 layers) with a byte-level BPE tokenizer."""
    from transformers import T5Config, T5ForConditionalGeneration

    tok = _bpe_tokenizer("t5")
    _seed()
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=16, d_ff=37, num_layers=2, num_decoder_layers=2, num_heads=2,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                   decoder_start_token_id=tok.pad_token_id)
    folder = _save(T5ForConditionalGeneration(cfg), tmp_path / name)
    tok.save_pretrained(folder)
    return folder


def tiny_gpt2_folder(tmp_path: Path, name: str = "tiny-gpt2") -> Path:
    """A GPT2LMHeadModel (causal LM, 2 layers, 2 heads) with a byte-level BPE tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = _bpe_tokenizer("gpt2")
    _seed()
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    folder = _save(GPT2LMHeadModel(cfg), tmp_path / name)
    tok.save_pretrained(folder)
    return folder


def tiny_mixtral_folder(tmp_path: Path, name: str = "tiny-mixtral") -> Path:
    """A MixtralForCausalLM (mixture of experts: 2 layers, 4 experts, top-2) with a byte-level BPE tokenizer."""
    from transformers import MixtralConfig, MixtralForCausalLM

    tok = _bpe_tokenizer("gpt2")
    _seed()
    cfg = MixtralConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=2, num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2,
                        max_position_embeddings=64, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id)
    folder = _save(MixtralForCausalLM(cfg), tmp_path / name)
    tok.save_pretrained(folder)
    return folder


ALL_FOLDERS = {
    "tiny-vit": tiny_vit_folder,
    "tiny-vit-gray": tiny_gray_vit_folder,
    "tiny-resnet": tiny_resnet_folder,
    "tiny-bert-sentiment": tiny_bert_classifier_folder,
    "tiny-distilbert": tiny_distilbert_classifier_folder,
    "tiny-roberta-sentiment": tiny_roberta_classifier_folder,
    "tiny-sentence-encoder": tiny_sentence_encoder_folder,
    "tiny-t5": tiny_t5_folder,
    "tiny-gpt2": tiny_gpt2_folder,
}


# ---- the example plugin (examples/zooscope-example-plugin), installed into a temporary --target folder ----

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "zooscope-example-plugin"


def install_example_plugin(target: Path) -> Path:
    """``pip install --target`` the example plugin (no network, no deps) from a copy of its source; return target."""
    import shutil
    import subprocess
    import sys

    src = target.parent / f"{target.name}-src"
    shutil.copytree(EXAMPLE_PLUGIN, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    return target


class plugin_on_path:
    """Put an installed --target folder on sys.path (importlib.metadata then finds its entry points), and take
    it away again with the plugin's modules and zooscope's plugin cache."""

    def __init__(self, target: Path):
        self.target = str(target)

    def __enter__(self):
        import importlib
        import sys

        from model_zoo import plugins

        sys.path.insert(0, self.target)
        importlib.invalidate_caches()
        plugins.forget()
        return self

    def __exit__(self, *exc):
        import importlib
        import sys

        from model_zoo import plugins

        if self.target in sys.path:
            sys.path.remove(self.target)
        for mod in [m for m in sys.modules if m.startswith("zooscope_example_plugin")]:
            del sys.modules[mod]
        importlib.invalidate_caches()
        plugins.forget()
        return False
