"""Readable words from subword tokens: WordPiece ``##`` pieces, byte-level BPE ``Ġ`` pieces and
SentencePiece ``▁`` pieces merged back into the words a person typed, each word keeping its pieces
(for a tooltip) and the sum of their scores.

Pure Python: no torch, no tokenizer needed. The scheme is read from the pieces themselves:

- WordPiece (BERT, DistilBERT, MiniLM): a piece starting with ``##`` continues the word before it.
- Byte-level BPE (GPT-2, RoBERTa): a piece starting with ``Ġ`` (an encoded space) starts a word, any
  other piece continues the one before; the pieces are bytes spelled as characters (GPT-2's
  ``bytes_to_unicode`` table), decoded back to UTF-8 here (``Ã©`` -> ``é``).
- SentencePiece (T5, ALBERT, XLM-R): a piece starting with ``▁`` starts a word, others continue.

Special tokens (``[CLS]``, ``<s>``, ``</pad>``, ...) always stand alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_SPECIAL = re.compile(r"^(\[[A-Z_]+\]|<[^<>\s]{1,16}>|<\|[^|]{1,24}\|>)$")
WORDPIECE, BYTE_BPE, SENTENCEPIECE = "wordpiece", "byte-bpe", "sentencepiece"


@dataclass(frozen=True)
class Word:
    """One readable word: its text, the token pieces it was made of, and their positions [start, end)."""

    text: str
    pieces: tuple[str, ...]
    start: int
    end: int
    special: bool = False

    @property
    def tooltip(self) -> str:
        """The pieces as the tokenizer produced them, e.g. ``un | ##believ | ##able``."""
        return " | ".join(self.pieces)


def is_special(piece: str) -> bool:
    """True for a tokenizer's special tokens: ``[CLS]``, ``[SEP]``, ``<s>``, ``</s>``, ``<pad>``, ``<|endoftext|>``."""
    return bool(_SPECIAL.match(piece))


def scheme(pieces: Sequence[str]) -> str:
    """Which subword scheme the pieces follow: wordpiece, byte-bpe or sentencepiece."""
    plain = [p for p in pieces if not is_special(p)]
    if any(p.startswith("Ġ") or p.startswith("Ċ") for p in plain):
        return BYTE_BPE
    if any(p.startswith("▁") for p in plain):
        return SENTENCEPIECE
    return WORDPIECE


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's table from the characters byte-level BPE prints back to the bytes they stand for."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _decode_bytes(text: str) -> str:
    table = _byte_decoder()
    if not all(ch in table for ch in text):
        return text.replace("Ġ", " ").strip()
    return bytes(table[ch] for ch in text).decode("utf-8", errors="replace").strip()


def _starts_word(piece: str, kind: str, first: bool) -> bool:
    if first:
        return True
    if kind == WORDPIECE:
        return not piece.startswith("##")
    if kind == BYTE_BPE:
        return piece.startswith("Ġ") or piece.startswith("Ċ")
    return piece.startswith("▁")


def _text(pieces: Sequence[str], kind: str) -> str:
    if kind == WORDPIECE:
        return "".join(p[2:] if i and p.startswith("##") else p for i, p in enumerate(pieces))
    if kind == BYTE_BPE:
        return _decode_bytes("".join(pieces)) or "".join(pieces)
    joined = "".join(pieces).replace("▁", " ").strip()
    return joined or "▁"


def merge(pieces: Sequence[str]) -> list[Word]:
    """Group token pieces into readable words (special tokens alone), in order, covering every piece."""
    kind = scheme(pieces)
    groups: list[tuple[int, int, bool]] = []  # (start, end, special)
    for i, piece in enumerate(pieces):
        special = is_special(piece)
        if special or not groups or groups[-1][2] or _starts_word(piece, kind, False):
            groups.append((i, i + 1, special))
        else:
            s, _, _ = groups[-1]
            groups[-1] = (s, i + 1, False)
    return [Word(pieces[s] if sp else _text(pieces[s:e], kind), tuple(pieces[s:e]), s, e, sp)
            for s, e, sp in groups]


def merge_scores(pieces: Sequence[str], scores: Sequence[float]) -> list[tuple[Word, float]]:
    """Words with the sum of their pieces' scores (attributions add up, so words keep completeness)."""
    if len(scores) < len(pieces):
        raise ValueError(f"{len(pieces)} pieces but only {len(scores)} scores")
    return [(w, float(sum(scores[w.start:w.end]))) for w in merge(pieces)]
