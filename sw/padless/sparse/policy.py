"""The TR-BERT learned token-selection policy: float training (torch), integer quantization, project files.

Method: TR-BERT (Ye et al., NAACL 2021, arXiv 2105.11618, sections 3.1-3.3; ALGORITHMS.md section 3). At
each selection point (before encoder layer ``i``) a policy network ``Linear(hidden -> 32) -> GELU ->
Linear(32 -> 1) -> sigmoid`` gives every surviving token a keep probability; [CLS] is always kept. Training
on unlabelled real text against the unpruned fp32 model (the teacher):

1. Imitation warm-up (TR-BERT's "imitation learning" start): binary cross-entropy of the policy logits
   against the cascade ranking (SpAtten): a token is labelled "keep" at point ``p`` when it is among the
   ``ceil(keep^(p+1) n)`` tokens of largest attention received from the teacher, accumulated over the
   layers before the point (the float counterpart of :func:`padless.sparse.tokens.select_tokens`).
2. REINFORCE (Williams 1992; TR-BERT section 3.2): per input, ``samples`` (8, as the paper) keep masks
   are drawn from the Bernoulli keep probabilities at every point in turn (a point sees only the survivors
   of the previous one); the pruned model runs (a removed token is masked out of every later attention and
   keeps its hidden state, exactly the golden model's carrying), and each sample gets the reward
   ``R = -L_distill - alpha * kept``, ``L_distill = (1 - cos(e_s, e_t)) [+ w ||h_s - h_t||^2 / ||h_t||^2]``
   (mean-pooled sentence embeddings over every token, carried rows included, against the teacher; the
   relative hidden MSE is off by default: carried rows dominate it), ``kept`` the fraction of the real
   tokens alive after each point, averaged over the points. The baseline is the mean reward of the input's
   samples; the loss is ``-sum (R - b) log pi(mask)``. *(padless)* alpha is adapted by dual ascent,
   ``alpha <- alpha exp(rate (kept - target))`` with ``target`` the cascade's budget ``mean_p keep^(p+1)``,
   so the sampled policy stays at the keep budget instead of drifting to keep everything (with a fixed
   alpha the optimum depends on the loss scale of the model; ``adapt_alpha=False`` gives the paper's fixed
   alpha).

Integer policy (:func:`quantize_policy`): the device runs the MLP on the int8 hidden state entering the
selection layer (:func:`padless.sparse.tokens.policy_logits`): int8 weights per output channel with the
input's per-channel scale folded in, int32 biases, dyadic requantization to int16, the encoder's integer
piecewise-linear GELU, requantization to int8, an int8 ``32 -> 1`` dot product to an int32 logit. No
sigmoid: ``sigmoid(z) >= 0.5`` is ``z >= 0``. With a keep target ``keep < 1`` the integer threshold of each
point is calibrated instead, in order, on the integer model over calibration text: the largest threshold
at which at least ``keep`` of the rows entering the point (the [CLS] rows included) are kept.

Files: ``policy.npz`` in the project folder (:func:`save_policy` / :func:`load_policy`), registered in
``manifest.json`` by :func:`install_policy`, which also sets ``sparsity.tokens.method`` to ``policy``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import InputError, ProjectError
from ..ir import EncoderSpec, LinearSpec
from ..quant import intops
from .tokens import POLICY_MID_BITS, POLICY_WIDTH, PolicyPoint, carry_requant, policy_logits, select_by_logits

__all__ = ["TokenPolicy", "QuantPolicy", "PolicyTrainConfig", "train_policy", "quantize_policy",
           "save_policy", "load_policy", "install_policy", "POLICY_FILE", "POLICY_WIDTH", "pruned_forward"]

#: File name of the integer policy in a project folder.
POLICY_FILE = "policy.npz"


class TokenPolicy(nn.Module):
    """One ``Linear(hidden -> 32) -> GELU -> Linear(32 -> 1)`` per selection layer (float, torch).

    ``forward(layer, h)``: ``(B, n, hidden)`` float -> ``(B, n)`` keep logits (sigmoid gives the keep
    probability). The last bias starts at +2 (keep probability 0.88), so an untrained policy keeps most
    tokens."""

    def __init__(self, hidden: int, layers: Sequence[int], width: int = POLICY_WIDTH):
        super().__init__()
        self.layers = sorted(int(i) for i in layers)
        self.hidden, self.width = int(hidden), int(width)
        self.nets = nn.ModuleDict({str(i): nn.Sequential(nn.Linear(hidden, width), nn.GELU(), nn.Linear(width, 1))
                                   for i in self.layers})
        with torch.no_grad():
            for net in self.nets.values():
                net[2].bias.fill_(2.0)

    def forward(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        return self.nets[str(int(layer))](h)[..., 0]


@dataclass
class PolicyTrainConfig:
    """Training settings (defaults sized for minilm-l6 on 2 CPU cores: about 5 min)."""

    keep: float = 0.7                 # target kept ratio per point (imitation labels, threshold calibration)
    imitation_steps: int = 60
    rl_steps: int = 60
    batch_size: int = 8               # inputs per step (x samples in the REINFORCE phase)
    samples: int = 8                  # Bernoulli samples per input (TR-BERT: 8)
    alpha: float = 0.5                # reward weight of the kept fraction (initial value when adapted)
    adapt_alpha: bool = True          # dual ascent on alpha to hold the kept fraction at the keep target
    alpha_rate: float = 0.5           # alpha <- alpha * exp(rate * (kept - target)) after each step
    mse_weight: float = 0.0           # weight of the relative hidden MSE in the distillation loss
    lr: float = 1e-3
    max_len: int = 64
    seed: int = 0
    datasets: list = field(default_factory=lambda: ["fortunes", "reuters", "vader-tweets"])
    texts_per_dataset: int = 1000

    def check(self) -> "PolicyTrainConfig":
        """Raise InputError naming the first bad field."""
        for name in ("batch_size", "samples", "max_len", "texts_per_dataset"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"policy training {name} must be a positive integer, got {v!r}")
        for name in ("imitation_steps", "rl_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InputError(f"policy training {name} must be a non-negative integer, got {v!r}")
        if not 0 < float(self.keep) <= 1:
            raise InputError(f"policy keep must be in (0, 1], got {self.keep!r}")
        if not float(self.lr) > 0 or not float(self.alpha) >= 0 or not float(self.mse_weight) >= 0:
            raise InputError("policy lr must be > 0; alpha and mse_weight >= 0")
        if self.adapt_alpha and not float(self.alpha) > 0:
            raise InputError("an adapted alpha must start > 0")
        if "vader-movie" in self.datasets:
            raise InputError("vader-movie is the evaluation set; train the policy on fortunes, reuters, vader-tweets")
        return self


def _additive(alive: torch.Tensor) -> torch.Tensor:
    """``(B, n)`` bool alive keys -> ``(B, 1, 1, n)`` additive attention mask for eager BERT attention."""
    return torch.where(alive, 0.0, torch.finfo(torch.float32).min)[:, None, None, :]


def pruned_forward(bert, policy: TokenPolicy | None, ids: torch.Tensor, mask: torch.Tensor,
                   mode: str = "greedy", threshold: float = 0.0, generator: torch.Generator | None = None):
    """Float forward pass of ``bert`` with token selection by ``policy`` (the golden model's semantics).

    Args:
        ids, mask: ``(B, n)`` token ids and {0, 1} real-token mask (padded batch, CPU training).
        mode: ``"greedy"`` (keep iff logit >= threshold) or ``"sample"`` (Bernoulli(sigmoid(logit))).
    Returns:
        ``(h, logp, kept)``: ``(B, n, hidden)`` last hidden states (removed tokens carry theirs),
        ``(B,)`` summed log-probabilities of the sampled decisions (non-[CLS] alive tokens), ``(B,)``
        fraction of real tokens alive after each selection point, averaged over the points.
    """
    real = mask.bool()
    h = bert.embeddings(input_ids=ids)
    alive = real.clone()
    logp = torch.zeros(ids.shape[0])
    kept = torch.zeros(ids.shape[0])
    points = policy.layers if policy is not None else []
    for i, blk in enumerate(bert.encoder.layer):
        if i in points:
            z = policy(i, h)
            if mode == "sample":
                p = torch.sigmoid(z)
                keep = torch.bernoulli(p.detach(), generator=generator).bool()
                dec = alive.clone()
                dec[:, 0] = False
                lp = torch.where(keep, torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z))
                logp = logp + (lp * dec).sum(1)
            else:
                keep = z >= threshold
            keep = keep.clone()
            keep[:, 0] = True
            alive = alive & keep
            kept = kept + alive.sum(1) / real.sum(1)
        h_new = blk(h, attention_mask=_additive(alive))
        if isinstance(h_new, tuple):
            h_new = h_new[0]
        h = torch.where(alive[..., None], h_new, h)
    return h, logp, kept / max(len(points), 1)


def _distill(h, ht, mask, mse_weight: float = 0.0) -> torch.Tensor:
    """Per-input distillation loss ``(B,)``: 1 - cos of mean-pooled embeddings (+ mse_weight * relative
    hidden MSE over the real tokens)."""
    m = mask[..., None].float()
    es, et = (h * m).sum(1) / m.sum(1), (ht * m).sum(1) / m.sum(1)
    cos = torch.nn.functional.cosine_similarity(es, et, dim=-1)
    mse = (((h - ht) ** 2) * m).sum((1, 2)) / ((ht ** 2) * m).sum((1, 2))
    return (1 - cos) + mse_weight * mse


def _teacher(bert, ids, mask):
    """Unpruned fp32 run -> last hidden states and per-layer attention received ``(L, B, n)``."""
    with torch.no_grad():
        out = bert(input_ids=ids, attention_mask=mask, output_attentions=True)
    m = mask[:, None, :, None].float()
    rec = torch.stack([(a * m).sum((1, 2)) for a in out.attentions])  # sum over heads and real queries
    return out.last_hidden_state, rec


def _imitation_labels(rec, mask, layers: list[int], keep: float) -> torch.Tensor:
    """``(P, B, n)`` float {0, 1}: cascade keep labels at each point (module docstring, step 1)."""
    labels = []
    n_real = mask.sum(1)
    for p, i in enumerate(layers):
        imp = rec[:i].sum(0).masked_fill(~mask.bool(), -1.0)
        imp[:, 0] = float("inf")
        lab = torch.zeros_like(imp)
        for b in range(imp.shape[0]):
            c = max(1, math.ceil(keep ** (p + 1) * int(n_real[b])))
            lab[b, torch.argsort(imp[b], descending=True, stable=True)[:c]] = 1.0
        labels.append(lab)
    return torch.stack(labels)


def _batches(ids: list[list[int]], bs: int, steps: int, seed: int, pad: int):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        sel = [ids[j] for j in rng.choice(len(ids), size=min(bs, len(ids)), replace=False)]
        n = max(map(len, sel))
        x = torch.full((len(sel), n), pad, dtype=torch.long)
        m = torch.zeros((len(sel), n), dtype=torch.long)
        for b, s in enumerate(sel):
            x[b, :len(s)] = torch.tensor(s)
            m[b, :len(s)] = 1
        yield x, m


def training_texts(spec: EncoderSpec, tc: PolicyTrainConfig) -> list[list[int]]:
    """Token ids of the training texts (first ``texts_per_dataset`` of each dataset), truncated at max_len."""
    from ..finetune.train import TrainConfig, training_ids
    return training_ids(spec, TrainConfig(max_len=tc.max_len, datasets=list(tc.datasets),
                                          texts_per_dataset=tc.texts_per_dataset))


def train_policy(spec: EncoderSpec, layers: Sequence[int], config: PolicyTrainConfig | dict | None = None,
                 ids: list[list[int]] | None = None, log: Callable[[str], None] | None = None
                 ) -> tuple[TokenPolicy, dict]:
    """Train the float TR-BERT policy for selection before ``layers`` against the unpruned fp32 ``spec``.

    Args:
        spec: post-norm BERT-family encoder (the teacher; frozen).
        layers: selection layers, each in ``1 .. L-1``.
        config: :class:`PolicyTrainConfig` (or a dict of its fields).
        ids: token ids to train on (default: :func:`training_texts`; never the VADER movie snippets).
        log: optional progress sink (one line per 10 steps).
    Returns:
        ``(policy, record)``: the trained :class:`TokenPolicy` (eval mode) and a JSON-able record (config,
        window means of the losses, rewards and kept fractions, seconds).
    Raises:
        InputError: bad settings or selection layers.
    """
    from ..finetune.student import bert_from_spec
    tc = PolicyTrainConfig(**config) if isinstance(config, dict) else (config or PolicyTrainConfig())
    tc.check()
    layers = sorted(set(int(i) for i in layers))
    if not layers or any(not 1 <= i < spec.num_layers for i in layers):
        raise InputError(f"policy selection layers {layers} must be in 1..{spec.num_layers - 1}")
    torch.manual_seed(tc.seed)
    bert = bert_from_spec(spec)
    for p in bert.parameters():
        p.requires_grad_(False)
    if ids is None:
        ids = training_texts(spec, tc)
    ids = [s for s in ids if len(s) >= 3]
    if not ids:
        raise InputError("no training text of at least 3 tokens")
    pad = spec.pad_token_id if spec.pad_token_id is not None else 0
    policy = TokenPolicy(spec.hidden_size, layers)
    opt = torch.optim.Adam(policy.parameters(), lr=tc.lr)
    gen = torch.Generator().manual_seed(tc.seed)
    hist: dict[str, list] = {"imitation_bce": [], "reward": [], "distill": [], "kept": [], "alpha": []}
    alpha = float(tc.alpha)
    # Cascade's kept fraction after each point, averaged over the points (the REINFORCE budget).
    target = float(np.mean([tc.keep ** (p + 1) for p in range(len(layers))]))
    t0 = time.perf_counter()
    say = log or (lambda s: None)

    for step, (x, m) in enumerate(_batches(ids, tc.batch_size, tc.imitation_steps, tc.seed, pad)):
        ht, rec = _teacher(bert, x, m)
        lab = _imitation_labels(rec, m, layers, tc.keep)
        # Teacher-forced hidden states: the unpruned run's input to each selection layer.
        with torch.no_grad():
            hs = bert(input_ids=x, attention_mask=m, output_hidden_states=True).hidden_states
        valid = m.bool().clone()
        valid[:, 0] = False
        loss = 0.0
        for p, i in enumerate(layers):
            z = policy(i, hs[i])
            bce = torch.nn.functional.binary_cross_entropy_with_logits(z, lab[p], reduction="none")
            loss = loss + (bce * valid).sum() / valid.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist["imitation_bce"].append(float(loss.detach()))
        if step % 10 == 9:
            say(f"imitation {step + 1}/{tc.imitation_steps}: bce {np.mean(hist['imitation_bce'][-10:]):.4f}")

    for step, (x, m) in enumerate(_batches(ids, tc.batch_size, tc.rl_steps, tc.seed + 1, pad)):
        ht, _ = _teacher(bert, x, m)
        S = tc.samples
        xr, mr, htr = x.repeat_interleave(S, 0), m.repeat_interleave(S, 0), ht.repeat_interleave(S, 0)
        h, logp, kept = pruned_forward(bert, policy, xr, mr, mode="sample", generator=gen)
        with torch.no_grad():
            dist = _distill(h, htr, mr, tc.mse_weight)
            reward = -dist - alpha * kept
            r = reward.view(-1, S)
            adv = (r - r.mean(1, keepdim=True)).view(-1)
        loss = -(adv * logp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist["reward"].append(float(reward.mean()))
        hist["distill"].append(float(dist.mean()))
        hist["kept"].append(float(kept.mean()))
        hist["alpha"].append(alpha)
        if tc.adapt_alpha:
            alpha *= math.exp(tc.alpha_rate * (float(kept.mean()) - target))
        if step % 10 == 9:
            say(f"reinforce {step + 1}/{tc.rl_steps}: reward {np.mean(hist['reward'][-10:]):.4f} distill "
                f"{np.mean(hist['distill'][-10:]):.4f} kept {np.mean(hist['kept'][-10:]):.3f} (target {target:.3f}) "
                f"alpha {alpha:.3f}")
    policy.eval()

    def windows(v):
        return [round(float(np.mean(v[j:j + 10])), 5) for j in range(0, len(v), 10)]
    record = {"method": "TR-BERT: imitation warm-up on cascade attention ranking, then REINFORCE",
              "layers": layers, "config": {f.name: getattr(tc, f.name) for f in fields(tc)},
              "texts": len(ids), "seconds": round(time.perf_counter() - t0, 1),
              **{k: windows(v) for k, v in hist.items()}}
    return policy, record


@dataclass
class QuantPolicy:
    """The integer policy: one :class:`padless.sparse.tokens.PolicyPoint` per selection layer + a record."""

    points: dict
    record: dict = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return sorted(self.points)


def _pack(xs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in xs])]).astype(np.int64)
    return np.concatenate([np.asarray(x, np.int64) for x in xs]), offsets


def quantize_policy(policy: TokenPolicy, qe, xs: Sequence[np.ndarray], keep: float | None = None,
                    record: dict | None = None) -> QuantPolicy:
    """Quantize the float policy for the integer encoder ``qe`` (module docstring, "Integer policy").

    Args:
        policy: trained :class:`TokenPolicy`.
        qe: the project's :class:`padless.quant.quantize.QuantizedEncoder` (per-layer output scales).
        xs: calibration sequences, each ``(n, hidden)`` int8 layer-0 input (the host's quantized embedding).
        keep: per-point keep target for the integer thresholds; None or 1.0: threshold 0 (sigmoid >= 0.5).
    Returns:
        :class:`QuantPolicy`. Ranges (int16 GELU input, int8 GELU output) are the maxima over the
        calibration rows entering each point (after the earlier points' selection).
    Raises:
        InputError: no calibration rows, a keep target outside (0, 1], or a point outside ``1 .. L-1``.
    """
    from ..golden import run_layer
    from ..quant.quantize import _qlinear, quantize_weights

    if not xs:
        raise InputError("quantize_policy needs calibration sequences")
    if keep is not None and not 0 < float(keep) <= 1:
        raise InputError(f"policy keep target must be in (0, 1], got {keep!r}")
    h, cur = _pack(xs)
    heads = qe.model["num_heads"]
    points = {}
    calib = {}
    for i, layer in enumerate(qe.layers):
        if i in policy.layers:
            carry_requant(qe, i)  # validates the point and the per-layer scales
            s_in = np.asarray(qe.layers[i - 1].scales["out"], np.float64)
            net = policy.nets[str(i)]
            w1 = net[0].weight.detach().double().numpy()
            b1 = net[0].bias.detach().double().numpy()
            w2 = net[2].weight.detach().double().numpy()
            b2 = net[2].bias.detach().double().numpy()
            s_in = np.broadcast_to(np.asarray(s_in, np.float64), (w1.shape[1],))
            pre = (h * s_in) @ w1.T + b1
            s_mid = max(float(np.abs(pre).max()), 1e-6) / ((1 << (POLICY_MID_BITS - 1)) - 1)
            q1 = _qlinear(LinearSpec(weight=w1, bias=b1), s_in, s_mid, POLICY_MID_BITS)
            tab = intops.gelu_pwl_table(s_mid)
            u = q1(h)
            g = intops.i_gelu_pwl(u, tab["lo"], tab["k"], tab["slope"], tab["icpt"])
            s_act = max(float(np.abs(g).max()) * s_mid, 1e-6) / 127.0
            m_act, sh_act = intops.dyadic(s_mid / s_act, POLICY_MID_BITS + 2)
            w2q, ws2 = quantize_weights(LinearSpec(weight=w2, bias=b2))
            logit_scale = float(s_act * ws2[0])
            b2q = int(intops.saturate(np.round(b2[0] / logit_scale), 32))
            pt = PolicyPoint(layer=i, w1=q1.w, b1=q1.bias, m1=q1.m, shift1=q1.shift, gelu_lo=int(tab["lo"]),
                             gelu_k=int(tab["k"]), gelu_slope=tab["slope"], gelu_icpt=tab["icpt"],
                             m_act=int(m_act), shift_act=int(sh_act), w2=w2q[0], b2=b2q, threshold=0,
                             logit_scale=logit_scale)
            z = policy_logits(pt, h)
            if keep is not None and float(keep) < 1:
                n = len(z)
                cls = np.zeros(n, dtype=bool)
                cls[cur[:-1][cur[:-1] < cur[1:]]] = True
                need = max(0, math.ceil(float(keep) * n) - int(cls.sum()))
                others = np.sort(z[~cls])[::-1]
                pt.threshold = int(others[need - 1]) if 0 < need <= len(others) else \
                    (int(others.max()) + 1 if len(others) else 0)
            mask = select_by_logits(z, cur, pt.threshold)
            calib[str(i)] = {"rows_in": int(len(z)), "kept": round(float(mask.mean()), 4),
                             "mid_scale": s_mid, "act_scale": s_act, "threshold": int(pt.threshold),
                             "threshold_real": pt.threshold * logit_scale}
            points[i] = pt
            cur = np.concatenate([[0], np.cumsum(mask)]).astype(np.int64)[cur]
            h = h[mask]
        if i >= max(policy.layers):
            break
        h = run_layer(layer, h, cur, heads)
    rec = dict(record or {})
    rec["calibration"] = {"sequences": len(xs), "keep_target": keep, "points": calib}
    return QuantPolicy(points=points, record=rec)


_ARRAYS = ("w1", "b1", "m1", "shift1", "gelu_slope", "gelu_icpt", "w2")
_SCALARS = ("gelu_lo", "gelu_k", "m_act", "shift_act", "b2", "threshold")


def save_policy(qp: QuantPolicy, path: str | Path, root=None) -> Path:
    """Write ``qp`` as an ``.npz`` (arrays ``L{i}.{name}`` + a JSON ``meta`` with scalars and the record);
    atomic and never through a link, inside ``root`` when given (:mod:`padless.fsutil`)."""
    arrays = {}
    meta = {"format": "padless-token-policy", "version": 1, "layers": qp.layers, "points": {},
            "record": qp.record}
    for i, pt in qp.points.items():
        for name in _ARRAYS:
            arrays[f"L{i}.{name}"] = np.asarray(getattr(pt, name))
        meta["points"][str(i)] = {**{k: int(getattr(pt, k)) for k in _SCALARS}, "logit_scale": pt.logit_scale}
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=float).encode(), dtype=np.uint8)
    path = Path(path)
    from ..fsutil import write_npz
    write_npz(path, arrays, root)   # atomic, never through a link (padless.fsutil)
    return path


def load_policy(path: str | Path) -> QuantPolicy:
    """Read a policy written by :func:`save_policy`; ``path`` is the ``.npz`` or a project folder.
    Raises ProjectError for a missing or malformed file."""
    p = Path(path)
    if p.is_dir():
        p = p / POLICY_FILE
    if not p.is_file():
        raise ProjectError(f"no token policy at {p}; train one with bench/train_token_policy.py or "
                           "`padless train-policy PROJECT`")
    try:
        with np.load(p) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            points = {}
            for key, sc in meta["points"].items():
                i = int(key)
                arrs = {name: np.asarray(z[f"L{i}.{name}"]).astype(np.int64) for name in _ARRAYS}
                arrs["w1"] = arrs["w1"].astype(np.int8)
                arrs["w2"] = arrs["w2"].astype(np.int8)
                points[i] = PolicyPoint(layer=i, **arrs, **{k: int(sc[k]) for k in _SCALARS},
                                        logit_scale=float(sc["logit_scale"]))
    except (KeyError, ValueError, OSError) as exc:
        raise ProjectError(f"{p} is not a padless token policy ({exc}); retrain it") from exc
    return QuantPolicy(points=points, record=meta.get("record", {}))


def install_policy(project_dir: str | Path, qp: QuantPolicy, keep: float) -> Path:
    """Save ``qp`` as ``policy.npz`` in the project, register it (``files.token_policy`` + checksum) and set
    ``sparsity.tokens`` to ``{layers, keep, method: policy}`` in ``manifest.json``. Returns the file path."""
    from ..project import load_project, update_manifest
    from .config import parse_sparsity
    proj = load_project(project_dir)
    sp = dict(proj.sparsity)
    sp = parse_sparsity({**sp, "tokens": {"layers": qp.layers, "keep": float(keep), "method": "policy"}},
                        proj.model.get("num_layers"))
    path = save_policy(qp, Path(project_dir) / POLICY_FILE, root=project_dir)
    update_manifest(Path(project_dir), {"sparsity": sp, "token_policy": qp.record},
                    {"token_policy": POLICY_FILE})
    return path
