"""Function-preserving output-channel permutations that pair similar rows for pattern pe-pair.

Pattern ``pe-pair`` (:mod:`padless.sparse.weights`) makes output rows ``2i`` and ``2i + 1`` of every pruned
Linear keep ONE in-bank column set per bank (two MACs per DSP48E2). Two neighbouring rows are arbitrary, so
sharing a kept set costs importance: a column that matters to one row but not its neighbour competes with
the neighbour's. Reordering the output channels of a Linear so that rows with similar per-bank importance
patterns become neighbours recovers part of it. Some reorderings do not change the float model at all
(``W`` is ``(out, in)``, ``y = x W^T + b``):

* FFN: a permutation ``P`` of the intermediate channels: rows of ``ffn_up`` W and b, and the same ``P`` on
  the columns (inputs) of ``ffn_down`` W. GELU is element-wise, so ``ffn_down(act(ffn_up(h)))`` is unchanged.
* V: a permutation of the head-dim channels inside each head (rows of ``v`` W and b) and the same on the
  columns of ``o`` W, whose input is the concatenated per-head context ``P_h V_h``.
* Q and K: one permutation per head on the rows (and biases) of BOTH ``q`` and ``k`` inside that head:
  ``Q_h K_h^T`` is a sum over the head dim, so it is unchanged (so are padless's integer scores and its
  4-bit top-k estimates: per-head sums and per-tensor/per-head maxima, :mod:`padless.sparse.attention`).
* ``o`` and ``ffn_down`` write the hidden size (the residual stream, LayerNorm, the next layer): their
  outputs are NOT permuted. Their input columns move with their producer's rows, which changes which
  inputs share a bank of theirs (a side effect the pairing does not optimise).

Method (the idea of Pool & Yu, "Channel Permutations for N:M Sparsity", NeurIPS 2021: permute channels so
that the structured pattern keeps more importance, choose the permutation by the kept-importance objective
and improve it by local swaps; they permute the input channels of an N:M layer, here the output rows a
pe-pair shares): for one permutable group of ``n`` rows, with importance ``S`` ``(n, in)`` (summed over the
Linears that share the permutation: q and k) split into ``nb = in / B`` banks and ``P`` kept per bank,

* ``R_a = sum_banks top_P(S_a)`` is what row ``a`` keeps on its own (pattern ``row``), and
  ``K_ab = sum_banks top_P(S_a + S_b)`` what the pair ``(a, b)`` keeps under pe-pair; the pairing loss is
  ``L_ab = R_a + R_b - K_ab >= 0`` (:func:`pair_loss`; ``n^2 * in`` additions and ``n^2 * nb``
  partial sorts of ``B`` values, done in row chunks);
* a perfect matching of minimum total loss (= maximum kept importance) is found by greedy matching on
  ascending ``L`` (``O(n^2 log n)``) then 2-opt: for every two pairs ``(a, b), (c, d)`` try ``(a, c), (b, d)``
  and ``(a, d), (b, c)``, apply the best non-overlapping improving swaps, repeat (``O(n^2)`` a pass,
  at most :data:`MAX_PASSES` passes);
* the matching is kept only if it keeps strictly more than the identity pairing ``(2i, 2i + 1)``
  (so the result is never worse under the objective, and an already pe-pair-pruned model stays as it is).
  Pairs are ordered by their lower original row, lower row first, so the permutation stays close to the
  identity.

Large groups (``n^2 * in`` above :data:`_EXACT_ELEMS`, MiniLM's FFN: 0.9 G partial-sort elements, ~40 s a
layer): ``K_ab`` is at least what the pair keeps with ``a``'s own kept columns, ``R_a + sum(S_b over a's
mask)``, or with ``b``'s; one ``(n, in) x (in, n)`` product gives that bound for every pair, the exact
``L`` is then computed for each row's ``c = _EXACT_ELEMS / (n * in)`` partners of smallest bounded loss
(113 for MiniLM's FFN) and the bound is kept elsewhere. The final comparison with the identity is exact.

Importance per criterion: ``magnitude`` ``|w|``; ``activation`` ``|w| * ||x||`` (Wanda, the ranking that
criterion prunes by); ``sparsegpt`` ``(|w| * ||x||)^2``: the OBS saliency ``w^2 / [H^-1]_jj`` with the
diagonal approximation ``H ~ diag(||x||^2)`` (SparseGPT sums saliency over a pair). ``||x||`` is the L2
norm of each input channel over calibration tokens (:func:`padless.sparse.weights.input_norms`).

Cost on MiniLM-L6 (``F`` 1536, hidden 384, ``B`` 16): the FFN group dominates (one 1536 x 384 x 1536
product, 67 M partial-sort elements, the greedy matching's sort of 1.2 M pair losses and the 2-opt passes:
seconds a layer); Q/K and V groups are per head (``d`` 32), exact, negligible.
"""
from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..ir import EncoderSpec, LinearSpec
from .weights import kept_per_bank, layer_ratios, _check_banks

__all__ = ["pair_loss", "pair_rows", "pairing_kept", "plan_permutations", "apply_permutations", "permute_spec",
           "permute_norms", "importance", "MAX_PASSES"]

#: 2-opt passes after the greedy matching (each pass applies every non-overlapping improving swap).
MAX_PASSES = 50
#: Rows of the loss matrix computed at once (bounds memory: chunk * n * in * 4 bytes).
_CHUNK_ELEMS = 1 << 24
#: Largest ``n^2 * in`` of a group whose pair losses are all computed exactly (partial sorts of ``B``
#: values); larger groups get exact losses for their most promising partners only (``pair_loss``).
_EXACT_ELEMS = 1 << 26


def importance(w: np.ndarray, criterion: str = "magnitude", input_norm: np.ndarray | None = None) -> np.ndarray:
    """``(out, in)`` weights -> ``(out, in)`` float64 importance for the pairing (module docstring):
    ``|w|`` (magnitude), ``|w| * ||x||`` (activation), ``(|w| * ||x||)^2`` (sparsegpt). Raises InputError
    for an unknown criterion or a data-aware one without ``input_norm`` ``(in,)``."""
    s = np.abs(np.asarray(w, dtype=np.float64))
    if criterion == "magnitude":
        return s
    if criterion not in ("activation", "sparsegpt"):
        raise InputError(f"weights criterion {criterion!r} is not available; choose magnitude, activation or "
                         "sparsegpt")
    if input_norm is None or np.shape(input_norm) != (s.shape[1],):
        raise InputError(f"criterion {criterion} needs the ({s.shape[1]},) input-channel norms to pair rows")
    s = s * np.asarray(input_norm, dtype=np.float64)[None, :]
    return s * s if criterion == "sparsegpt" else s


def _top_sum(x: np.ndarray, keep: int) -> np.ndarray:
    """Sum of the ``keep`` largest values along the last axis."""
    bank = x.shape[-1]
    if keep >= bank:
        return x.sum(-1)
    return np.partition(x, bank - keep, axis=-1)[..., bank - keep:].sum(-1)


def pair_loss(scores: np.ndarray, bank: int, per_bank: int) -> tuple[np.ndarray, np.ndarray]:
    """Importance a row pair loses by sharing one kept set per bank.

    Args:
        scores: ``(n, in)`` non-negative importance of ``n`` rows (``in`` a multiple of ``bank``).
        bank: B; per_bank: P kept per bank.
    Returns:
        ``(L, R)``: ``L`` ``(n, n)`` float64 symmetric, ``L_ab = R_a + R_b - K_ab`` (module docstring; the
        diagonal is meaningless); ``R`` ``(n,)`` the importance each row keeps on its own. Exact when
        ``n^2 * in <= _EXACT_ELEMS``; above that, exact for each row's ``c = _EXACT_ELEMS / (n * in)`` most
        promising partners and an upper bound elsewhere (module docstring, "Large groups").
    Raises:
        InputError: a bank that does not divide ``in``.
    """
    s = np.asarray(scores, dtype=np.float64)
    nb = _check_banks(s.shape, bank)
    n, width = s.shape
    sb = s.reshape(n, nb, bank)
    r = _top_sum(sb, per_bank).sum(-1)
    s32 = sb.astype(np.float32)
    if n * n * width <= _EXACT_ELEMS:
        kept = np.empty((n, n), dtype=np.float64)
        chunk = max(1, _CHUNK_ELEMS // max(1, n * width))
        for a in range(0, n, chunk):
            both = s32[a:a + chunk, None] + s32[None]                  # (c, n, nb, B)
            kept[a:a + chunk] = _top_sum(both, per_bank).sum(-1, dtype=np.float64)
        kept = (kept + kept.T) / 2                                      # float32 rounding: make it symmetric
        return r[:, None] + r[None, :] - kept, r
    # Large groups: K_ab >= R_a + sum of s_b over a's own kept columns (the pair could use a's mask), and
    # the same with b's mask: one (n, in) x (in, n) product gives that lower bound of K for every pair.
    top = np.argsort(-sb, axis=2, kind="stable")[:, :, :per_bank]
    mask = np.zeros(sb.shape, dtype=np.float64)
    np.put_along_axis(mask, top, 1.0, axis=2)
    g = mask.reshape(n, width) @ s.T                                    # g[a, b] = s_b on a's kept columns
    lower = np.maximum(r[:, None] + g, (r[:, None] + g).T)
    loss = r[:, None] + r[None, :] - lower
    np.fill_diagonal(loss, np.inf)
    c = max(1, min(n - 1, _EXACT_ELEMS // (n * width)))
    cand = np.argpartition(loss, c - 1, axis=1)[:, :c]                 # (n, c) most promising partners
    chunk = max(1, _CHUNK_ELEMS // max(1, c * width))
    for a in range(0, n, chunk):
        rows = np.arange(a, min(n, a + chunk))
        both = s32[rows, None] + s32[cand[rows]]                        # (chunk, c, nb, B)
        kept = _top_sum(both, per_bank).sum(-1, dtype=np.float64)
        loss[rows[:, None], cand[rows]] = r[rows, None] + r[cand[rows]] - kept
    return np.minimum(loss, loss.T), r


def _greedy(loss: np.ndarray) -> np.ndarray:
    n = loss.shape[0]
    iu, ju = np.triu_indices(n, 1)
    order = np.argsort(loss[iu, ju], kind="stable")
    free = np.ones(n, dtype=bool)
    pairs = []
    for e in order:
        a, b = iu[e], ju[e]
        if free[a] and free[b]:
            free[a] = free[b] = False
            pairs.append((a, b))
            if len(pairs) == n // 2:
                break
    return np.asarray(pairs, dtype=np.int64)


def _two_opt(loss: np.ndarray, pairs: np.ndarray, passes: int) -> np.ndarray:
    pairs = pairs.copy()
    for _ in range(passes):
        a, b = pairs[:, 0], pairs[:, 1]
        cur = loss[a, b]
        base = cur[:, None] + cur[None, :]
        alt1 = loss[a[:, None], a[None, :]] + loss[b[:, None], b[None, :]]   # (a_i, a_j), (b_i, b_j)
        alt2 = loss[a[:, None], b[None, :]] + loss[b[:, None], a[None, :]]   # (a_i, b_j), (b_i, a_j)
        best = np.minimum(alt1, alt2)
        gain = base - best
        np.fill_diagonal(gain, 0.0)
        gain = np.triu(gain, 1)
        tol = 1e-12 * max(1.0, float(np.abs(cur).sum()))
        cand = np.argwhere(gain > tol)
        if not len(cand):
            break
        cand = cand[np.argsort(-gain[cand[:, 0], cand[:, 1]], kind="stable")]
        used = np.zeros(len(pairs), dtype=bool)
        for i, j in cand:
            if used[i] or used[j]:
                continue
            used[i] = used[j] = True
            ai, bi, aj, bj = pairs[i, 0], pairs[i, 1], pairs[j, 0], pairs[j, 1]
            if alt1[i, j] <= alt2[i, j]:
                pairs[i], pairs[j] = (ai, aj), (bi, bj)
            else:
                pairs[i], pairs[j] = (ai, bj), (bi, aj)
    return pairs


def pairing_kept(scores: np.ndarray, bank: int, per_bank: int, perm: np.ndarray | None = None) -> float:
    """Importance kept under pe-pair when rows ``perm[2i]`` and ``perm[2i + 1]`` share a kept set
    (``perm`` None: the identity, rows ``2i`` and ``2i + 1``). ``scores`` ``(n, in)``, ``n`` even."""
    s = np.asarray(scores, dtype=np.float64)
    if perm is not None:
        s = s[np.asarray(perm)]
    nb = _check_banks(s.shape, bank)
    pair = s.reshape(s.shape[0] // 2, 2, nb, bank).sum(axis=1)
    return float(_top_sum(pair, per_bank).sum())


def pair_rows(scores: Sequence[np.ndarray], bank: int, per_bank: int, passes: int = MAX_PASSES) -> np.ndarray:
    """Permutation of ``n`` output rows that pairs rows of similar importance (module docstring's method).

    Args:
        scores: one or more ``(n, in_k)`` importance matrices of Linears whose rows share the permutation
            (q and k of one head); their losses add.
        bank: B (divides every ``in_k``); per_bank: P kept per bank; passes: at most this many 2-opt passes.
    Returns:
        ``(n,)`` int64 permutation ``perm``: new row ``r`` is old row ``perm[r]``; rows ``perm[2i]`` and
        ``perm[2i + 1]`` form a pe-pair. The identity when the matching keeps no more than rows
        ``(2i, 2i + 1)`` do.
    Raises:
        InputError: an odd row count, row counts that differ, a bank that does not divide an input width.
    """
    mats = [np.asarray(s, dtype=np.float64) for s in scores]
    n = mats[0].shape[0]
    if n % 2 or any(m.shape[0] != n for m in mats):
        raise InputError(f"pairing rows needs one even row count for every Linear of a group, got "
                         f"{[m.shape[0] for m in mats]}")
    ident = np.arange(n, dtype=np.int64)
    if n == 2:
        return ident
    loss = sum(pair_loss(m, bank, per_bank)[0] for m in mats)
    pairs = _two_opt(loss, _greedy(loss), passes)
    pairs = np.sort(pairs, axis=1)
    perm = pairs[np.argsort(pairs[:, 0], kind="stable")].reshape(-1)
    new = sum(pairing_kept(m, bank, per_bank, perm) for m in mats)
    old = sum(pairing_kept(m, bank, per_bank) for m in mats)
    return perm if new > old * (1 + 1e-9) else ident


def _block_perm(blocks: Sequence[np.ndarray], size: int) -> np.ndarray:
    return np.concatenate([p + h * size for h, p in enumerate(blocks)])


def plan_permutations(spec: EncoderSpec, weights_cfg: Mapping[str, Any], norms: Sequence[Mapping] | None = None,
                      progress=None) -> list[dict]:
    """Choose the pairing permutations of every layer (module docstring).

    Args:
        spec: the dense float model.
        weights_cfg: the normalised weights config (``bank``, ``sparsity``/``layers``, ``criterion``).
        norms: per layer ``{linear: (in,) input-channel L2 norm}`` of the dense model
            (:func:`padless.sparse.weights.input_norms`); required for criteria activation and sparsegpt.
        progress: optional callable ``(layer_index, group)`` after each group.
    Returns:
        per layer ``{"qk": (hidden,), "v": (hidden,), "ffn": (intermediate,)}`` int64 permutations (within
        heads for qk and v); the identity for a layer with ratio 0.
    Raises:
        InputError: an odd head dim or intermediate size, missing norms for a data-aware criterion.
    """
    cfg = dict(weights_cfg or {})
    bank = int(cfg["bank"])
    criterion = cfg.get("criterion", "magnitude")
    ratios = layer_ratios(cfg, len(spec.layers))
    d, nh = spec.head_dim, spec.num_heads
    if d % 2 or spec.intermediate_size % 2:
        raise InputError(f"weights permute pairs rows inside a head (head dim {d}) and the FFN "
                         f"({spec.intermediate_size} channels); both must be even: remove permute")
    if criterion != "magnitude" and norms is None:
        raise InputError(f"weights permute with criterion {criterion} needs input norms of the dense model")
    plans = []
    for i, (layer, s) in enumerate(zip(spec.layers, ratios)):
        ident = {"qk": np.arange(spec.hidden_size), "v": np.arange(spec.hidden_size),
                 "ffn": np.arange(spec.intermediate_size)}
        if s == 0:
            plans.append(ident)
            continue
        p = kept_per_bank(bank, s)
        nrm = norms[i] if norms is not None else {}
        sc = {name: importance(getattr(layer, name).weight, criterion, nrm.get(name))
              for name in ("q", "k", "v", "ffn_up")}
        plan = {"qk": _block_perm([pair_rows([sc["q"][h * d:(h + 1) * d], sc["k"][h * d:(h + 1) * d]], bank, p)
                                   for h in range(nh)], d)}
        if progress:
            progress(i, "qk")
        plan["v"] = _block_perm([pair_rows([sc["v"][h * d:(h + 1) * d]], bank, p) for h in range(nh)], d)
        if progress:
            progress(i, "v")
        plan["ffn"] = pair_rows([sc["ffn_up"]], bank, p)
        if progress:
            progress(i, "ffn")
        plans.append(plan)
    return plans


def _rows(lin: LinearSpec, perm: np.ndarray) -> LinearSpec:
    return LinearSpec(weight=np.ascontiguousarray(lin.weight[perm]), bias=np.ascontiguousarray(lin.bias[perm]))


def _cols(lin: LinearSpec, perm: np.ndarray) -> LinearSpec:
    return LinearSpec(weight=np.ascontiguousarray(lin.weight[:, perm]), bias=lin.bias)


def _check_perm(perm: np.ndarray, n: int, what: str) -> np.ndarray:
    perm = np.asarray(perm, dtype=np.int64)
    if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
        raise InputError(f"{what} permutation must reorder 0..{n - 1} exactly once, got shape {perm.shape}")
    return perm


def apply_permutations(spec: EncoderSpec, plans: Sequence[Mapping[str, np.ndarray]]) -> EncoderSpec:
    """Apply per-layer ``{"qk", "v", "ffn"}`` permutations (any may be missing: identity) to a copy of
    ``spec``: rows of q and k by ``qk``; rows of v and columns of o by ``v``; rows of ffn_up and columns of
    ffn_down by ``ffn``. The float model computes the same function (to float rounding). Raises InputError
    for a wrong length, a permutation that is not a bijection, or ``qk`` / ``v`` moving a channel across
    heads."""
    if len(plans) != len(spec.layers):
        raise InputError(f"{len(plans)} layer permutations for a model of {len(spec.layers)} layers")
    d = spec.head_dim
    out = copy.copy(spec)
    out.layers = []
    for i, (layer, plan) in enumerate(zip(spec.layers, plans)):
        new = copy.copy(layer)
        for key in ("qk", "v"):
            if key in plan:
                perm = _check_perm(plan[key], spec.hidden_size, f"layer {i} {key}")
                if not np.array_equal(perm // d, np.arange(spec.hidden_size) // d):
                    raise InputError(f"layer {i} {key} permutation moves a channel to another head")
        if "qk" in plan:
            perm = np.asarray(plan["qk"], dtype=np.int64)
            new.q, new.k = _rows(layer.q, perm), _rows(layer.k, perm)
        if "v" in plan:
            perm = np.asarray(plan["v"], dtype=np.int64)
            new.v, new.o = _rows(layer.v, perm), _cols(layer.o, perm)
        if "ffn" in plan:
            perm = _check_perm(plan["ffn"], spec.intermediate_size, f"layer {i} ffn")
            new.ffn_up, new.ffn_down = _rows(layer.ffn_up, perm), _cols(layer.ffn_down, perm)
        out.layers.append(new)
    return out


def permute_norms(norms: Sequence[Mapping[str, np.ndarray]], plans: Sequence[Mapping[str, np.ndarray]]) -> list:
    """Input-channel norms of the dense model -> those of the permuted one: o's input (the context) moves
    with ``v``, ffn_down's (the activation) with ``ffn``; q/k/v/ffn_up read the unpermuted hidden state."""
    out = []
    for nrm, plan in zip(norms, plans):
        nrm = dict(nrm)
        if "o" in nrm and "v" in plan:
            nrm["o"] = np.asarray(nrm["o"])[np.asarray(plan["v"])]
        if "ffn_down" in nrm and "ffn" in plan:
            nrm["ffn_down"] = np.asarray(nrm["ffn_down"])[np.asarray(plan["ffn"])]
        out.append(nrm)
    return out


def permute_spec(spec: EncoderSpec, weights_cfg: Mapping[str, Any], norms: Sequence[Mapping] | None = None,
                 progress=None) -> tuple[EncoderSpec, list[dict]]:
    """Plan (:func:`plan_permutations`) and apply (:func:`apply_permutations`) the pe-pair row pairing.

    Returns ``(permuted spec, plans)``; ``spec.source["weight_permutation"]`` of the copy records how many
    channels moved per layer and group. Raises InputError as those two do."""
    plans = plan_permutations(spec, weights_cfg, norms, progress)
    out = apply_permutations(spec, plans)
    moved = [{k: int((np.asarray(v) != np.arange(len(v))).sum()) for k, v in plan.items()} for plan in plans]
    out.source = {**spec.source, "weight_permutation": {"method": "greedy matching + 2-opt (Pool & Yu 2021)",
                                                        "moved": moved}}
    return out, plans
