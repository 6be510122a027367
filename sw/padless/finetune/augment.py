"""Data augmentation for distillation on a small in-domain corpus (``train.augment``).

Distilling on the same few thousand in-domain sentences for several epochs fits them and not the domain:
a 50%-sparse MiniLM student after 1,200 mixed and 1,800 in-domain steps on ``vader-movie-train`` (about
8,000 snippets) matched the teacher's sentence embeddings 2.6x better on snippets it had trained on than on
held-out ones (relative probe logit error 0.0088 vs 0.0233; the same student before that in-domain
training: 0.039 vs 0.041). Measured (docs/finetune.md "Ablations"): ``augment: 0.5`` narrows that gap
(0.0108 vs 0.0233) but leaves the held-out error where it was. TinyBERT
(Jiao et al., arXiv 1909.10351, section 3.3) meets the same problem in task-specific distillation by
augmenting the training text; the teacher labels every augmented sentence, so no label is needed.
TinyBERT replaces words by a masked language model's or GloVe's nearest candidates; a sentence-embedding
model has no MLM head, so this module perturbs the word sequence itself, at whole-word boundaries
(a WordPiece continuation ``##..`` stays with its word):

* ``drop``: each word is deleted with probability 0.15 (at least one word is kept);
* ``crop``: a contiguous run of at least half of the words;
* ``splice``: the first part of the sentence followed by the last part of another training sentence.

Every draw comes from a generator seeded by ``(seed, step)``, so a resumed run sees the same batches.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["continuation_mask", "words", "augment_sentence", "augment_batch", "KINDS"]

KINDS = ("drop", "crop", "splice")
DROP_P = 0.15


def continuation_mask(tokenizer_path: str | Path) -> np.ndarray:
    """``(vocab,)`` bool: True for WordPiece continuation tokens (``##...``) of the tokenizer in
    ``tokenizer_path`` (a folder with ``tokenizer.json``)."""
    from tokenizers import Tokenizer
    vocab = Tokenizer.from_file(str(Path(tokenizer_path) / "tokenizer.json")).get_vocab()
    mask = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for tok, i in vocab.items():
        mask[i] = tok.startswith("##")
    return mask


def words(inner: Sequence[int], cont: np.ndarray) -> list[list[int]]:
    """Split token ids without [CLS]/[SEP] into whole words (a word and its ``##`` continuations)."""
    out: list[list[int]] = []
    for t in inner:
        if out and t < len(cont) and cont[t]:
            out[-1].append(int(t))
        else:
            out.append([int(t)])
    return out


def augment_sentence(ids: Sequence[int], other: Sequence[int], kind: str, rng: np.random.Generator,
                     cont: np.ndarray, max_len: int) -> list[int]:
    """One augmented sentence.

    Args:
        ids, other: ``[CLS] ... [SEP]`` token ids; ``other`` is only read by ``splice``.
        kind: one of :data:`KINDS`.
        rng: numpy generator (the only source of randomness).
        cont: :func:`continuation_mask` of the tokenizer.
        max_len: tokens in the result at most ([CLS] and [SEP] included; whole words are cut at the end).
    Returns:
        ``[CLS] ... [SEP]`` token ids (``ids`` unchanged when it has fewer than two words).
    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown augmentation {kind!r} (one of {', '.join(KINDS)})")
    w = words(ids[1:-1], cont)
    if len(w) < 2:
        return list(ids)
    if kind == "drop":
        keep = rng.random(len(w)) >= DROP_P
        if not keep.any():
            keep[rng.integers(len(w))] = True
        w = [x for x, k in zip(w, keep) if k]
    elif kind == "crop":
        n = int(rng.integers((len(w) + 1) // 2, len(w) + 1))
        s = int(rng.integers(0, len(w) - n + 1))
        w = w[s:s + n]
    else:
        v = words(other[1:-1], cont)
        if v:  # a partner with no words leaves the sentence as it is
            w = w[:int(rng.integers(1, len(w)))] + v[int(rng.integers(0, len(v))):]
    out = [int(ids[0])]
    for x in w:
        if len(out) + len(x) > max_len - 1:
            break
        out += x
    if len(out) == 1:  # a first word longer than max_len - 2: keep its first pieces
        out += w[0][:max_len - 2]
    return out + [int(ids[-1])]


def augment_batch(sel: list[list[int]], corpus: list[list[int]], p: float, rng: np.random.Generator,
                  cont: np.ndarray, max_len: int) -> list[list[int]]:
    """Replace each sentence of a batch, with probability ``p``, by an augmented variant (kind drawn
    uniformly from :data:`KINDS`; ``splice`` partners drawn from ``corpus``). Returns a new list."""
    out = []
    for ids in sel:
        if rng.random() < p:
            kind = KINDS[int(rng.integers(len(KINDS)))]
            other = corpus[int(rng.integers(len(corpus)))]
            ids = augment_sentence(ids, other, kind, rng, cont, max_len)
        out.append(list(ids))
    return out
