"""4-bit Q/K top-k sparse attention (DAC 2022 s3.2) against brute-force references; dense equivalence at k = n."""
import numpy as np
import pytest

from padless.golden import quantize_input, run_encoder
from padless.models import Tokenizer
from padless.packing import pack
from padless.quant import intops
from padless.quant.calibrate import calibrate
from padless.quant.quantize import quantize_encoder
from padless.reference import embed
from padless.sparse.attention import attention_heads, keep_count
from padless.sparse.selection import estimate_scores, quantize4, topk_indices


def brute_topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row: sort keys by (score descending, index ascending), keep k, return ascending."""
    out = []
    for row in scores.tolist():
        ranked = sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]
        out.append(sorted(ranked))
    return np.asarray(out, dtype=np.int32)


def brute_attention(q, k, v, heads, score_m, score_shift, ctx_m, ctx_shift, kk):
    """Loop-per-query reference of the sparse operator (same integer formulas, no vectorisation tricks)."""
    n, hidden = q.shape
    d = hidden // heads
    ctx = np.zeros((n, hidden), dtype=np.int64)
    for h in range(heads):
        qh, kh, vh = (a[:, h * d:(h + 1) * d].astype(np.int64) for a in (q, k, v))
        est = quantize4(qh).astype(np.int64) @ quantize4(kh).astype(np.int64).T
        for i in range(n):
            keys = brute_topk(est[i:i + 1], kk)[0] if kk < n else np.arange(n)
            acc = np.array([int(qh[i] @ kh[j]) for j in keys], dtype=np.int64)
            s = intops.requantize(acc, score_m, score_shift, 32)
            p = intops.i_softmax(s[None, :])[0]
            ctx[i, h * d:(h + 1) * d] = p @ vh[keys]
    return intops.requantize(ctx, ctx_m, ctx_shift, 8)


@pytest.mark.parametrize("seed", range(4))
def test_topk_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    scores = rng.integers(-3, 4, size=(n, n))          # a narrow range: many ties
    for k in (1, 2, 5, n - 1, n, n + 7):
        got = topk_indices(scores, k)
        assert got.shape == (n, min(k, n))
        assert np.array_equal(got, brute_topk(scores, min(k, n)))


def test_topk_tie_goes_to_lower_index():
    scores = np.array([[5, 7, 7, 7, 1]])
    assert topk_indices(scores, 2).tolist() == [[1, 2]]
    assert topk_indices(np.zeros((1, 6), int), 3).tolist() == [[0, 1, 2]]


def test_keep_count_rules():
    assert keep_count(10, None) == 10 and keep_count(10, {}) == 10
    assert keep_count(10, {"topk": 16}) == 10 and keep_count(100, {"topk": 16}) == 16
    assert keep_count(256, {"density": 0.25}) == 64
    assert keep_count(10, {"density": 0.25, "min_k": 8}) == 8
    assert keep_count(3, {"density": 0.25, "min_k": 8}) == 3
    with pytest.raises(ValueError):
        keep_count(10, {"topk": 0})
    with pytest.raises(ValueError):
        keep_count(10, {"density": 1.5})


@pytest.mark.parametrize("n,topk", [(13, 4), (20, 1), (9, 9), (6, 10)])
def test_sparse_attention_matches_loop_reference(n, topk):
    rng = np.random.default_rng(n * 31 + topk)
    heads, hidden = 4, 32
    q, k, v = (rng.integers(-127, 128, size=(n, hidden)) for _ in range(3))
    args = (heads, 3_000, 20, 5_000, 24)
    got = attention_heads(q, k, v, *args, cfg={"topk": topk})
    want = brute_attention(q, k, v, *args, min(topk, n))
    assert np.array_equal(got, want)


def test_dense_equivalence_at_k_equal_n():
    rng = np.random.default_rng(7)
    n, heads, hidden = 17, 4, 32
    q, k, v = (rng.integers(-127, 128, size=(n, hidden)) for _ in range(3))
    args = (heads, 3_000, 20, 5_000, 24)
    dense = attention_heads(q, k, v, *args, cfg=None)
    for cfg in ({"topk": n}, {"topk": n + 5}, {"density": 1.0}):
        assert np.array_equal(attention_heads(q, k, v, *args, cfg=cfg), dense)
    # Probabilities: dense rows sum to about 2^8; top-k rows have zeros outside the kept keys.
    probs = []
    attention_heads(q, k, v, *args, cfg={"topk": 3}, probs_out=probs)
    assert probs[0].shape == (heads, n, n) and ((probs[0] > 0).sum(axis=2) <= 3).all()


@pytest.fixture(scope="module")
def tiny_q(tiny_spec, movie_texts):
    tok = Tokenizer(tiny_spec.tokenizer_path, tiny_spec.max_positions)
    qe = quantize_encoder(tiny_spec, calibrate(tiny_spec, tok.encode(movie_texts.texts[-48:], truncate=True)))
    ids = tok.encode(movie_texts.texts[100:116], truncate=True)
    return qe, [quantize_input(embed(tiny_spec, i), qe.input_scale) for i in ids]


def test_topk_on_real_qk_and_packing_invariance(tiny_q):
    """Real Q/K (tiny model on real sentences): top-k equals brute force; a sentence's result with top-k on
    does not depend on its pack."""
    qe, xs = tiny_q
    layer = qe.layers[0]
    x = np.asarray(xs[0], np.int64)
    q4, k4 = quantize4(layer.q(x)[:, :16]), quantize4(layer.k(x)[:, :16])
    est = estimate_scores(q4, k4)
    assert np.array_equal(topk_indices(est, 4), brute_topk(est, 4))
    sp = {"attention": {"topk": 4}}
    packed, off = pack(xs)
    together = run_encoder(qe, packed, off, sp)
    alone = np.concatenate([run_encoder(qe, s, np.array([0, len(s)]), sp) for s in xs])
    assert np.array_equal(together, alone)
    assert not np.array_equal(together, run_encoder(qe, packed, off))  # top-k 4 does change the result


@pytest.mark.slow
def test_topk_brute_force_on_minilm_qk(minilm, movie_texts):
    tok = Tokenizer(minilm.tokenizer_path, minilm.max_positions)
    ids = tok.encode(movie_texts.texts[:8], truncate=True)
    qe = quantize_encoder(minilm, calibrate(minilm, ids))
    x = np.asarray(quantize_input(embed(minilm, max(ids, key=len)), qe.input_scale), np.int64)
    L = qe.layers[2]
    d = minilm.head_dim
    for h in range(minilm.num_heads):
        est = estimate_scores(quantize4(L.q(x)[:, h * d:(h + 1) * d]), quantize4(L.k(x)[:, h * d:(h + 1) * d]))
        for k in (1, 8, 16):
            assert np.array_equal(topk_indices(est, k), brute_topk(est, min(k, len(x))))
