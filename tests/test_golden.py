"""The integer golden model: determinism, packing invariance, persistence, fidelity to fp32 on real text."""
import numpy as np
import pytest

from padless.golden import dequantize_output, quantize_input, run_encoder
from padless.models import Tokenizer
from padless.packing import PackingError, pack
from padless.quant.calibrate import calibrate
from padless.quant.quantize import load_quantized, quantize_encoder, save_quantized
from padless.reference import embed, encode_fp32, pool


@pytest.fixture(scope="module")
def tiny_q(tiny_spec, movie_texts):
    tok = Tokenizer(tiny_spec.tokenizer_path, tiny_spec.max_positions)
    cal = tok.encode(movie_texts.texts[-64:], truncate=True)
    qe = quantize_encoder(tiny_spec, calibrate(tiny_spec, cal))
    ids = tok.encode(movie_texts.texts[:24], truncate=True)
    xs = [quantize_input(embed(tiny_spec, i), qe.input_scale) for i in ids]
    return qe, ids, xs


def test_golden_is_deterministic_and_int8(tiny_q):
    qe, _, xs = tiny_q
    x, off = pack(xs)
    a, b = run_encoder(qe, x, off), run_encoder(qe, x, off)
    assert a.dtype == np.int8 and a.shape == x.shape and np.array_equal(a, b)


def test_packing_invariance(tiny_q):
    """A sentence's result does not depend on the other sentences in its pack nor on their order."""
    qe, _, xs = tiny_q
    x, off = pack(xs)
    together = run_encoder(qe, x, off)
    alone = [run_encoder(qe, s, np.array([0, len(s)])) for s in xs]
    assert np.array_equal(together, np.concatenate(alone))
    perm = np.random.default_rng(0).permutation(len(xs))
    xp, offp = pack([xs[i] for i in perm])
    shuffled = run_encoder(qe, xp, offp)
    for j, i in enumerate(perm):
        assert np.array_equal(shuffled[offp[j]:offp[j + 1]], alone[i])


def test_bad_offsets_rejected(tiny_q):
    qe, _, xs = tiny_q
    x, off = pack(xs[:3])
    with pytest.raises(PackingError):
        run_encoder(qe, x, off[:-1])
    with pytest.raises(PackingError):
        run_encoder(qe, x, np.array([0, 0, len(x)]))


def test_save_load_roundtrip(tiny_q, tmp_path):
    qe, _, xs = tiny_q
    save_quantized(qe, tmp_path / "q.npz")
    qe2 = load_quantized(tmp_path / "q.npz")
    x, off = pack(xs)
    assert np.array_equal(run_encoder(qe, x, off), run_encoder(qe2, x, off))
    assert np.array_equal(qe.input_scale, qe2.input_scale)


def test_integer_data_path_widths(tiny_q):
    """Weights are int8 in [-127, 127], biases fit int32, multipliers fit their stated widths."""
    qe, _, _ = tiny_q
    for L in qe.layers:
        for lin in (L.q, L.k, L.v, L.o, L.up, L.down):
            assert lin.w.dtype == np.int8 and np.abs(lin.w.astype(int)).max() <= 127
            assert np.abs(lin.bias).max() < 2**31
            assert np.all(lin.m < 2**31) and np.all(lin.shift <= 62)


@pytest.mark.slow
def test_golden_close_to_fp32_on_real_sentences(minilm, movie_texts):
    """Real MiniLM, real sentences: int8 golden sentence embeddings stay close to fp32."""
    from padless.data.datasets import calibration_texts
    from padless.models import load_recipe
    tok = Tokenizer(minilm.tokenizer_path, minilm.max_positions)
    cal = tok.encode(calibration_texts(load_recipe("minilm-l6").calibration)[0], truncate=True)  # the recipe's
    qe = quantize_encoder(minilm, calibrate(minilm, cal))
    ids = tok.encode(movie_texts.texts[:60], truncate=True)
    x, off = pack([quantize_input(embed(minilm, i), qe.input_scale) for i in ids])
    y = dequantize_output(run_encoder(qe, x, off), qe.output_scale)
    ref = encode_fp32(minilm, ids)
    cos = [float(pool(minilm, ref[b]) @ pool(minilm, y[off[b]:off[b + 1]])) for b in range(len(ids))]
    assert np.mean(cos) > 0.99 and np.min(cos) > 0.97
