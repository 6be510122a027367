"""Token reduction in the golden model (SpAtten cascade pruning, TR-BERT carrying of removed tokens).

A 4-layer integer encoder is made from the `tiny` model's two quantized layers (repeated), so that two
cascaded selection points can be tested on real sentences in a fraction of a second.
"""
import dataclasses

import numpy as np
import pytest

from padless.errors import InputError
from padless.golden import quantize_input, run_encoder, run_layer
from padless.models import Tokenizer
from padless.opcount import layer_tokens
from padless.packing import pack
from padless.quant.calibrate import calibrate
from padless.quant.quantize import quantize_encoder
from padless.reference import embed
from padless.sparse.tokens import carry_requant, carry_rows, keep_fraction, keep_tokens, select_tokens

TOK = {"layers": [1, 3], "keep": 0.6}


@pytest.fixture(scope="module")
def enc4(tiny_spec, movie_texts):
    tok = Tokenizer(tiny_spec.tokenizer_path, tiny_spec.max_positions)
    qe = quantize_encoder(tiny_spec, calibrate(tiny_spec, tok.encode(movie_texts.texts[-48:], truncate=True)))
    qe4 = dataclasses.replace(qe, layers=qe.layers * 2, model={**qe.model, "num_layers": 4})
    ids = tok.encode(movie_texts.texts[200:214], truncate=True)
    return qe4, [quantize_input(embed(tiny_spec, i), qe.input_scale) for i in ids]


def reference_one(qe, x, select_at, keep, attention=None):
    """One sequence, written out plainly: brute-force ranking with Python's sorted."""
    h = np.asarray(x, np.int64)
    pos = list(range(len(h)))
    out = np.zeros_like(h)
    imp = {p: 0 for p in pos}
    for i, layer in enumerate(qe.layers):
        if i in select_at:
            c = keep_tokens(len(pos), keep)
            ranked = sorted(pos[1:], key=lambda p: (-imp[p], p))[: c - 1]
            kept = [pos[0]] + sorted(ranked)
            m, sh = carry_requant(qe, i)
            rows = [j for j, p in enumerate(pos) if p not in kept]
            out[[pos[j] for j in rows]] = carry_rows(h[rows], m, sh)
            h = h[[j for j, p in enumerate(pos) if p in kept]]
            pos = kept
        rec = np.zeros(len(h), np.int64)
        h = run_layer(layer, h, np.array([0, len(h)]), qe.model["num_heads"], attention, rec)
        for j, p in enumerate(pos):
            imp[p] += int(rec[j])
    out[pos] = h
    return out, pos


@pytest.mark.parametrize("attention", [None, {"topk": 4}])
def test_matches_plain_reference_and_packing_invariance(enc4, attention):
    qe, xs = enc4
    sp = {"attention": attention or {}, "tokens": TOK}
    x, off = pack(xs)
    kept = []
    got = run_encoder(qe, x, off, sp, kept_out=kept)
    assert got.dtype == np.int8 and got.shape == x.shape
    for b, s in enumerate(xs):
        want, pos = reference_one(qe, s, TOK["layers"], TOK["keep"], attention)
        assert np.array_equal(got[off[b]:off[b + 1]], want.astype(np.int8))
        survivors = np.flatnonzero(kept[0][off[b]:off[b + 1]]).tolist()
        assert survivors == pos and survivors[0] == 0                    # [CLS] always survives
        assert len(pos) == layer_tokens(len(s), 4, TOK)[-1]              # opcount agrees on the counts
    perm = np.random.default_rng(1).permutation(len(xs))
    xp, offp = pack([xs[i] for i in perm])
    shuffled = run_encoder(qe, xp, offp, sp)
    for j, i in enumerate(perm):
        assert np.array_equal(shuffled[offp[j]:offp[j + 1]], got[off[i]:off[i + 1]])


def test_dense_and_topk_unchanged_without_token_reduction(enc4):
    qe, xs = enc4
    x, off = pack(xs)
    for att in ({}, {"topk": 3}):
        plain = run_encoder(qe, x, off, {"attention": att})
        assert np.array_equal(run_encoder(qe, x, off, {"attention": att, "tokens": {}}), plain)
        assert np.array_equal(run_encoder(qe, x, off, {"attention": att, "tokens": {"layers": [1], "keep": 1.0}}),
                              plain)
    kept = []
    run_encoder(qe, x, off, None, kept_out=kept)
    assert kept[0].all()


def test_rows_before_first_selection_are_the_dense_ones_and_cls_kept_at_tiny_keep(enc4):
    qe, xs = enc4
    s = xs[0]
    kept = []
    got = run_encoder(qe, s, np.array([0, len(s)]), {"tokens": {"layers": [1], "keep": 0.01}}, kept_out=kept)
    assert kept[0].tolist() == [True] + [False] * (len(s) - 1)
    h1 = run_layer(qe.layers[0], np.asarray(s, np.int64), np.array([0, len(s)]), qe.model["num_heads"])
    m, sh = carry_requant(qe, 1)
    assert np.array_equal(got[1:], carry_rows(h1[1:], m, sh).astype(np.int8))


def test_select_tokens_rules():
    imp = np.array([0, 5, 9, 5, 9, 1,   3, 3, 3])
    off = np.array([0, 6, 9])
    mask = select_tokens(imp, off, 0.5)
    # seq 0: 6 tokens -> 3 kept: [CLS] + the two 9s; seq 1: 3 tokens -> 2 kept: [CLS] + the tie at the lower position
    assert mask.tolist() == [True, False, True, False, True, False, True, True, False]
    assert select_tokens(np.zeros(4, int), np.array([0, 4]), 0.5).tolist() == [True, True, False, False]
    with pytest.raises(InputError):
        select_tokens(np.array([-1, 2]), np.array([0, 2]), 0.5)


def test_keep_count_exact_and_consistent_with_opcount():
    assert keep_fraction(0.7) == (7, 10) and keep_fraction(0.25) == (1, 4)
    for keep in (0.1, 0.25, 0.3, 0.5, 0.6, 0.7, 0.75, 0.9, 1.0):
        for n in range(1, 600):
            assert keep_tokens(n, keep) == layer_tokens(n, 2, {"layers": [1], "keep": keep})[1]


def test_bad_selection_layers(enc4):
    qe, xs = enc4
    x, off = pack(xs[:2])
    for layers in ([0], [4]):
        with pytest.raises(InputError, match="outside"):
            run_encoder(qe, x, off, {"tokens": {"layers": layers, "keep": 0.5}})
