"""SparseGPT bank-balanced pruning (Frantar & Alistarh 2023): masks, reconstruction, sequential layers."""
import numpy as np
import pytest

from padless.errors import InputError
from padless.sparse.sparsegpt import obs_prune
from padless.sparse.weights import LINEAR_NAMES, prune_spec, prune_weight


def _correlated_inputs(rng, tokens, width):
    """Transformer activations are nearly low-rank with unequal channel scales; OBS exploits both,
    magnitude pruning neither."""
    x = rng.normal(size=(tokens, 16)) @ rng.normal(size=(16, width)) + 0.3 * rng.normal(size=(tokens, width))
    return x * rng.uniform(0.2, 3.0, size=width)


def test_obs_prune_balanced_and_beats_magnitude_on_output_error():
    rng = np.random.default_rng(0)
    x = _correlated_inputs(rng, 2000, 64)
    w = rng.normal(size=(24, 64))
    h = x.T @ x
    out = obs_prune(w, h, 16, 0.5)
    assert out.dtype == np.float32 and out.shape == w.shape
    assert ((out != 0).reshape(24, -1, 16).sum(axis=2) == 8).all()     # exactly 8 of 16 per bank
    mag = prune_weight(w, 16, 0.5)
    masked_only = np.where(out != 0, w, 0.0)                          # SparseGPT's mask, no reconstruction

    def err(v):
        return np.linalg.norm((w - v) @ x.T) / np.linalg.norm(w @ x.T)
    assert err(out) < 0.7 * err(masked_only)       # the OBS weight update recovers output error ...
    assert err(out) < 0.5 * err(mag)               # ... and beats magnitude pruning
    assert err(masked_only) < 1.0


def test_obs_prune_identity_cases_and_errors():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 32))
    h = np.eye(32)
    assert np.allclose(obs_prune(w, h, 16, 0.0), w.astype(np.float32))
    # With an identity Hessian (white inputs) the OBS saliency is |w| and no update crosses columns:
    # SparseGPT reduces to magnitude pruning.
    assert np.allclose(obs_prune(w, h, 16, 0.5, damp=0.0), prune_weight(w, 16, 0.5))
    with pytest.raises(InputError, match="Hessian must be"):
        obs_prune(w, np.eye(16), 16, 0.5)
    with pytest.raises(InputError, match="bank 12 does not divide"):
        obs_prune(w, h, 12, 0.5)
    with pytest.raises(InputError, match="not finite"):
        obs_prune(w, np.full((32, 32), np.nan), 16, 0.5)


def test_sparsegpt_prune_spec_on_real_text(tiny_spec, movie_texts):
    from padless.models import Tokenizer
    from padless.reference import encode_fp32, pool
    ids = Tokenizer(tiny_spec.tokenizer_path, tiny_spec.max_positions).encode(movie_texts.texts[:40], truncate=True)
    cfg = {"sparsity": 0.5, "bank": 16, "criterion": "sparsegpt"}
    sg = prune_spec(tiny_spec, cfg, token_ids=ids[:30])
    mag = prune_spec(tiny_spec, {"sparsity": 0.5, "bank": 16})
    for layer in sg.layers:
        for name in LINEAR_NAMES:
            w = getattr(layer, name).weight
            assert ((w != 0).reshape(w.shape[0], -1, 16).sum(axis=2) <= 8).all()
    assert sg.source["weight_sparsity"]["norms_from"] == "30 given sentences"
    # Held-out sentences: the reconstructed model stays closer to the dense one than magnitude pruning.
    held = ids[30:]

    def cos(spec):
        a = np.stack([pool(tiny_spec, h) for h in encode_fp32(tiny_spec, held)])
        b = np.stack([pool(spec, h) for h in encode_fp32(spec, held)])
        return float(np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))
    assert cos(sg) > cos(mag)
    # Magnitude re-pruning of the result is the identity (compile keeps SparseGPT's masks and weights).
    again = prune_spec(sg, {"sparsity": 0.5, "bank": 16})
    assert all(np.array_equal(getattr(a, n).weight, getattr(b, n).weight)
               for a, b in zip(sg.layers, again.layers) for n in LINEAR_NAMES)
