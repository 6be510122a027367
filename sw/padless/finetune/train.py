"""Sparse distillation on unlabelled real text (``padless finetune``).

Method (ALGORITHMS.md section 4; TinyBERT, Jiao et al. arXiv 1909.10351 section 3.1, for the hidden-state
losses): the dense fp32 model is the teacher. The student's weights start in one of two ways (``init``):

* ``sparsegpt`` (default): SparseGPT one-shot pruning at the final ratio (Frantar & Alistarh, ICML 2023;
  :mod:`padless.sparse.sparsegpt`: OBS masks and reconstructed kept weights, on ``calib_sentences`` training
  sentences); the masks then stay fixed and distillation trains the kept weights. On MiniLM at 50% this
  starts at cosine 0.89 instead of 0.70 and reached 0.945 after 300 steps (the cubic magnitude ramp: 0.88
  after 150 steps; docs/finetune.md).
* ``magnitude``: the dense copy, with bank-balanced magnitude masks grown on the cubic schedule of Zhu &
  Gupta (arXiv 1710.01878) over ``ramp`` of the steps (recomputed every ``mask_every`` steps), then training
  at the final ratio (sparse progressive distillation's pruning schedule).

Optionally (``replace_rate``) the other half of sparse progressive distillation: progressive module
replacement (BERT-of-Theseus), where each layer runs the teacher's dense module instead of the student's
with a probability that falls linearly to 0 at ``replace_until`` of the steps
(:meth:`padless.finetune.student.SparseStudent.enable_replacement`, :func:`replaced_layers`).

The student runs the configured top-k attention (4-bit Q/K selection) in its forward pass. Loss per batch:

* hidden: ``sum over real tokens ||h_s - h_t||^2 / sum over real tokens ||h_t||^2`` (last hidden states,
  relative MSE, padding excluded);
* cosine: ``mean over sentences (1 - cos(e_s, e_t))`` of mean-pooled sentence embeddings;
* layers (weight 1 by default): the same relative MSE for the embedding output and every intermediate
  layer, averaged (TinyBERT's hidden-state loss);
* attention (optional, weight 0 by default): ``KL(P_t || P_s)`` of every layer's attention probabilities
  over real queries, averaged over layers and heads (TinyBERT's attention loss, section 3.1).
* covariance (optional, weight 0 by default): ``mean over sentences d^T S d / tr(S^2)``, where ``d`` is the
  difference of the student's and the teacher's sentence embeddings (the model's own pooling and
  normalisation) and ``S`` the covariance of the teacher's sentence embeddings over ``covariance_texts``
  training sentences (no labels). ``d^T S d`` is the expected squared logit error of a linear probe whose
  weight vector is drawn with covariance ``S``; ``tr(S^2)`` is the same probe's logit variance over the
  teacher's embeddings, so the loss is a relative logit error. Why: a downstream linear probe reads the
  high-variance directions of the embedding (on MiniLM's VADER movie probe the top 10 principal components
  carry half of the logit error of a 50%-sparse student but 7% of its squared error), and the cosine loss
  weighs every direction alike. ``S`` is computed once and kept in the checkpoint. Measured: no gain
  (docs/finetune.md "Ablations"); off by default.
* probe (optional, weight 0 by default; **uses labels**): task-specific distillation (TinyBERT's
  prediction-layer loss with a linear probe as the prediction layer): ``mean (w.d)^2 / var(w.e_t)`` for
  a logistic-regression probe ``w`` fit once on the teacher's embeddings of ``probe_dataset`` and its
  labels (:func:`fit_probe`; a training dataset only, never the evaluation split). The probe reads the
  embedding with a large gain (|w| about 28 on MiniLM's unit vectors): at lr 1e-4 the loss rose; use
  about 2e-5.

Data: texts of the training datasets (default fortunes, Reuters-21578, VADER tweets, Amazon and NYT
snippets; ``vader-movie-train`` adds in-domain movie snippets; never the VADER movie test split), optionally
augmented (``augment``: word drop, crop or splice of a sentence, :mod:`padless.finetune.augment`),
tokenized with truncation at ``max_len``, shuffled once per epoch by a
generator seeded with ``seed + epoch``. Batches are padded (CPU training only). Determinism: dropout 0,
torch seeded, the data order a function of (seed, step); a checkpoint holds the student, the masks, the
optimizer, the step and the torch RNG state, so a resumed run reproduces the uninterrupted one exactly.

Quantization-aware training (``qat_steps``, :mod:`padless.finetune.qat`): the last steps run the student
through the simulated int8 data path with the scales ``padless compile`` would use. ``init_from`` starts
from an earlier student folder (its zeros are the fixed masks), e.g. to add QAT or top-k attention.

Output folder: ``config.json`` + ``model.safetensors`` (transformers ``save_pretrained``), the tokenizer
files, ``padless_sparsity.json`` (the normalised sparsity config ``padless compile`` reads from the folder,
and the training record with its time in seconds) and the checkpoint ``checkpoint.safetensors`` +
``checkpoint.json`` (:mod:`padless.finetune.checkpoint`: no pickle, so ``--resume`` runs no code from the
folder).
"""
from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import InputError
from ..sparse.config import parse_sparsity
from ..sparse.weights import LINEAR_NAMES, prune_spec
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .masks import cubic_sparsity

__all__ = ["TrainConfig", "load_finetune_config", "finetune", "training_ids", "SPARSITY_FILE", "CHECKPOINT"]

SPARSITY_FILE = "padless_sparsity.json"
CHECKPOINT = "checkpoint.safetensors"  # + checkpoint.json (padless.finetune.checkpoint)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
#: Datasets the trainer may read. vader-movie is the evaluation set and is refused.
TRAIN_DATASETS = ("fortunes", "reuters", "vader-tweets", "vader-amazon", "vader-nyt")
#: Datasets a config may name: the default mix plus the training side of the VADER movie split.
TRAINABLE = TRAIN_DATASETS + ("vader-movie-train",)
#: How the student's weights start: SparseGPT one-shot (fixed masks) or the dense copy (cubic magnitude ramp).
INITS = ("sparsegpt", "magnitude")


@dataclass
class TrainConfig:
    """The ``train:`` section of a finetune config (defaults sized for minilm-l6 on 2 CPU cores: about 25 min,
    SparseGPT init included; docs/benchmarks.md "finetune")."""

    steps: int = 1200                # optimizer steps (the schedule length)
    batch_size: int = 16             # sentences per step
    max_len: int = 64                # tokens per sentence (truncation, [SEP] kept)
    lr: float = 3e-4                 # AdamW peak learning rate (linear warm-up 5%, linear decay to 10%)
    ramp: float = 0.5                # fraction of the steps over which sparsity grows (cubic)
    mask_every: int = 10             # steps between mask updates during the ramp
    checkpoint_every: int = 50       # steps between checkpoints
    seed: int = 0
    datasets: list = field(default_factory=lambda: list(TRAIN_DATASETS))
    texts_per_dataset: int = 4000    # first N texts of each dataset
    loss_hidden: float = 1.0
    loss_cosine: float = 1.0
    loss_attention: float = 0.0
    loss_layers: float = 1.0         # relative MSE of every intermediate layer's hidden states (TinyBERT)
    loss_covariance: float = 0.0     # covariance-weighted sentence-embedding loss (relative probe logit error)
    covariance_texts: int = 2048     # training sentences (seeded sample) the teacher's embedding covariance uses
    loss_probe: float = 0.0          # task-specific: a linear probe's logit error (uses the labels of probe_dataset)
    probe_dataset: str = "vader-movie-train"  # labelled training dataset the probe is fit on (teacher embeddings)
    init: str = "sparsegpt"          # sparsegpt: one-shot OBS masks + reconstruction, then fixed masks;
                                     # magnitude: cubic ramp of magnitude masks (Zhu & Gupta)
    calib_sentences: int = 512       # training sentences (seeded sample) for the sparsegpt init
    qat_steps: int = 0               # the last N steps train with the simulated int8 data path (finetune/qat.py)
    qat_calibrate_every: int = 100   # QAT steps between re-calibrations of the int8 scales
    init_from: str = ""              # start from this student folder (a finetune output) instead of `init`
    replace_rate: float = 0.0        # progressive module replacement: probability that a layer runs the
                                     # teacher's module at step 0, falling linearly to 0 at `replace_until`
    replace_until: float = 0.5       # fraction of the steps after which only student modules run
    augment: float = 0.0             # probability that a training sentence is replaced by an augmented
                                     # variant (word drop / crop / splice; finetune/augment.py)
    calibration: dict = field(default_factory=dict)  # the config's top-level `calibration:` {dataset, count}:
                                     # QAT's scales, and what `padless compile` of the student calibrates on

    def check(self) -> "TrainConfig":
        """Raise InputError naming the first bad field."""
        if self.init not in INITS:
            raise InputError(f"train.init must be one of {', '.join(INITS)}, got {self.init!r}")
        for name in ("steps", "batch_size", "max_len", "mask_every", "checkpoint_every", "texts_per_dataset",
                     "calib_sentences", "covariance_texts"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InputError(f"train.{name} must be a positive integer, got {v!r}")
        if not isinstance(self.qat_steps, int) or isinstance(self.qat_steps, bool) or not 0 <= self.qat_steps <= self.steps:
            raise InputError(f"train.qat_steps must be an integer in [0, steps={self.steps}], got {self.qat_steps!r}")
        if not isinstance(self.qat_calibrate_every, int) or self.qat_calibrate_every < 1:
            raise InputError(f"train.qat_calibrate_every must be a positive integer, got {self.qat_calibrate_every!r}")
        if self.init_from and not (Path(self.init_from) / "config.json").is_file():
            raise InputError(f"train.init_from: {self.init_from} is not a student folder (no config.json); give "
                             "the --out folder of an earlier `padless finetune`")
        if self.max_len < 3:
            raise InputError("train.max_len must be >= 3 ([CLS], one token, [SEP])")
        if not 0 <= float(self.ramp) <= 1:
            raise InputError(f"train.ramp must be a fraction of the steps in [0, 1], got {self.ramp!r}")
        if not 0 <= float(self.augment) <= 1:
            raise InputError(f"train.augment must be a probability in [0, 1], got {self.augment!r}")
        if not 0 <= float(self.replace_rate) <= 1:
            raise InputError(f"train.replace_rate must be a probability in [0, 1], got {self.replace_rate!r}")
        if not 0 < float(self.replace_until) <= 1:
            raise InputError(f"train.replace_until must be a fraction of the steps in (0, 1], got {self.replace_until!r}")
        if float(self.replace_rate) > 0 and self.qat_steps and \
                self.replace_until * self.steps > self.steps - self.qat_steps:
            raise InputError(f"train.replace_until ({self.replace_until:g} of {self.steps} steps) reaches into the "
                             f"last {self.qat_steps} QAT steps; end module replacement before QAT")
        if not float(self.lr) > 0:
            raise InputError(f"train.lr must be > 0, got {self.lr!r}")
        for d in self.datasets:
            if d in ("vader-movie", "vader-movie-test"):
                raise InputError(f"{d} holds the evaluation snippets; train on {', '.join(TRAINABLE)} "
                                 "(vader-movie-train is vader-movie without its test split)")
            if d not in TRAINABLE:
                raise InputError(f"train.datasets: {d!r} is not a training dataset ({', '.join(TRAINABLE)})")
        if self.calibration:
            from ..data.datasets import check_calibration
            check_calibration(self.calibration)
        if self.loss_probe and self.probe_dataset not in TRAINABLE:
            raise InputError(f"train.probe_dataset: {self.probe_dataset!r} is not a training dataset "
                             f"({', '.join(TRAINABLE)}); the evaluation snippets are never trained on")
        weights = (self.loss_hidden, self.loss_cosine, self.loss_attention, self.loss_layers, self.loss_covariance,
                   self.loss_probe)
        if min(weights) < 0 or sum(weights) == 0:
            raise InputError("train loss weights must be >= 0 and not all 0")
        return self


def load_finetune_config(cfg: str | Path | Mapping[str, Any] | None) -> tuple[dict, TrainConfig]:
    """A YAML path or a mapping ``{attention, weights, tokens, train, calibration}`` -> ``(sparsity, TrainConfig)``.

    ``calibration: {dataset, count}`` (default: the model recipe's; ``dataset`` one name or a list) names the
    sentences QAT calibrates its int8 scales on; it is saved with the student, and ``padless compile`` of
    the student calibrates on the same sentences unless told otherwise (calibrate on the lengths the model
    will serve: long-text activations overflow ranges calibrated on tweets alone). The sparsity part is
    normalised by :func:`padless.sparse.config.parse_sparsity`. Raises InputError for
    unknown keys, bad values, or a ``tokens`` section (the trained token policy is not implemented: apply
    cascade token pruning at compile time instead)."""
    if cfg is None:
        data: dict = {}
    elif isinstance(cfg, Mapping):
        data = dict(cfg)
    else:
        from ..inputs import load_yaml
        p = Path(cfg)
        data = load_yaml(p, "finetune config") or {}  # bounded: no aliases, no duplicate keys, depth limited
        if not isinstance(data, Mapping):
            raise InputError(f"{p}: a finetune config is a mapping with attention / weights / train")
    unknown = set(data) - {"attention", "weights", "tokens", "train", "calibration"}
    if unknown:
        raise InputError(f"finetune config: unknown keys {sorted(unknown)} "
                         "(allowed: attention, weights, train, calibration)")
    sp = parse_sparsity({k: data.get(k) for k in ("attention", "weights", "tokens")})
    if sp["tokens"]:
        raise InputError("finetune does not train token selection; remove `tokens:` here and give it to "
                         "`padless compile --config` (cascade pruning), then train a learned policy with "
                         "`padless train-policy PROJECT --layers ...`")
    if sp["weights"].get("criterion", "magnitude") != "magnitude":
        raise InputError("finetune chooses its masks through train.init (sparsegpt or magnitude); remove "
                         "weights.criterion or set it to magnitude")
    train = data.get("train") or {}
    if not isinstance(train, Mapping):
        raise InputError("train: must be a mapping (steps, batch_size, lr, ...)")
    known = {f for f in TrainConfig.__dataclass_fields__} - {"calibration"}
    bad = set(train) - known
    if bad:
        raise InputError(f"train: unknown keys {sorted(bad)} (allowed: {', '.join(sorted(known))})")
    cal = data.get("calibration") or {}
    tc = TrainConfig(**{k: (list(v) if k == "datasets" else v) for k, v in train.items()},
                     calibration=dict(cal) if isinstance(cal, Mapping) else cal)
    for k in ("lr", "ramp", "loss_hidden", "loss_cosine", "loss_attention", "loss_layers", "loss_covariance",
              "loss_probe", "replace_rate", "replace_until", "augment"):
        v = getattr(tc, k)
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise InputError(f"train.{k} must be a number, got {v!r}")
        try:
            setattr(tc, k, float(v))
        except ValueError:
            raise InputError(f"train.{k} must be a number, got {v!r}") from None
    return sp, tc.check()


def training_ids(spec, tc: TrainConfig) -> list[list[int]]:
    """Token ids of the training texts (first ``texts_per_dataset`` of each dataset, file order), truncated
    at ``max_len`` with the final [SEP] kept. Raises DataError when a dataset is missing and cannot be fetched."""
    from ..data.datasets import load_dataset
    from ..models import Tokenizer
    if not spec.tokenizer_path:
        raise InputError(f"model {spec.name} has no tokenizer; finetune needs one to read the training text")
    tok = Tokenizer(spec.tokenizer_path, min(tc.max_len, spec.max_positions))
    ids = []
    for name in tc.datasets:
        texts = [t for t in load_dataset(name, limit=tc.texts_per_dataset).texts if t.strip()]
        ids += tok.encode(texts, truncate=True)
    if not ids:
        raise InputError("no training text")
    return ids


def _batch(ids: list[list[int]], perm: np.ndarray, j: int, bs: int, pad: int, transform=None):
    """Batch ``j`` of an epoch in order ``perm`` -> padded ``(bs, n)`` ids and ``(bs, n)`` {0,1} mask;
    ``transform(sentences) -> sentences`` (data augmentation) runs before padding."""
    sel = [ids[i] for i in perm[j * bs:(j + 1) * bs]]
    if transform is not None:
        sel = transform(sel)
    n = max(map(len, sel))
    x = torch.full((bs, n), pad, dtype=torch.long)
    m = torch.zeros((bs, n), dtype=torch.long)
    for b, s in enumerate(sel):
        x[b, :len(s)] = torch.tensor(s)
        m[b, :len(s)] = 1
    return x, m


def _relative_mse(hs, ht, m):
    return (((hs - ht) ** 2) * m).sum() / ((ht ** 2) * m).sum()


def sentence_embedding(h, mask, pooling: str = "mean", normalize: bool = False):
    """Sentence embeddings of a padded batch, as :func:`padless.reference.pool` defines them.

    Args:
        h: ``(B, n, hidden)`` float tensor of last hidden states.
        mask: ``(B, n)`` {0,1} tensor, 1 on real tokens.
        pooling: ``mean`` (over real tokens) or ``cls`` (token 0).
        normalize: L2-normalise each embedding (sentence-transformers models).
    Returns:
        ``(B, hidden)`` float tensor.
    """
    if pooling == "mean":
        m = mask[..., None].to(h.dtype)
        e = (h * m).sum(1) / m.sum(1)
    else:
        e = h[:, 0]
    return torch.nn.functional.normalize(e, dim=-1) if normalize else e


def embedding_covariance(teacher, ids: list[list[int]], spec, pad: int, batch_size: int = 64) -> torch.Tensor:
    """Covariance of the teacher's sentence embeddings: ``(hidden, hidden)`` float32, computed in float64.

    ``ids``: token id lists (each [CLS] ... [SEP]); the model's pooling and normalisation (``spec.pooling``,
    ``spec.normalize``). Raises InputError for fewer than two sentences."""
    if len(ids) < 2:
        raise InputError("the embedding covariance needs at least two sentences (train.covariance_texts)")
    e = teacher_embeddings(teacher, ids, spec, pad, batch_size)
    e = e - e.mean(0)
    return (e.T @ e / (e.shape[0] - 1)).float()


def teacher_embeddings(teacher, ids: list[list[int]], spec, pad: int, batch_size: int = 64) -> torch.Tensor:
    """The teacher's sentence embeddings ``(len(ids), hidden)`` float64 (the model's pooling and
    normalisation), computed in batches of ``batch_size`` without gradients."""
    out = []
    with torch.no_grad():
        for j in range(0, len(ids), batch_size):
            x, m = _batch(ids, np.arange(len(ids)), j // batch_size, batch_size, pad)
            n = min(batch_size, len(ids) - j)
            x, m = x[:n], m[:n]
            h = teacher(input_ids=x, attention_mask=m, token_type_ids=torch.zeros_like(x)).last_hidden_state
            out.append(sentence_embedding(h, m, spec.pooling, spec.normalize).double())
    return torch.cat(out)


def fit_probe(teacher, spec, tc: "TrainConfig", pad: int) -> dict:
    """Task-specific distillation target (TinyBERT's prediction-layer distillation, section 3.1, with a
    linear probe as the prediction layer): a scikit-learn ``LogisticRegression(C=4)`` fit on the teacher's
    sentence embeddings of ``tc.probe_dataset`` (its labels; the first ``texts_per_dataset`` texts).

    Returns ``{"w": (hidden,) float32 tensor, "var": float}``: the probe's weights and the variance of its
    logit over those embeddings. Raises InputError when the dataset has no two-class labels."""
    from sklearn.linear_model import LogisticRegression

    from ..data.datasets import load_dataset
    from ..models import Tokenizer
    ds = load_dataset(tc.probe_dataset, limit=tc.texts_per_dataset)
    if ds.labels is None or len(set(ds.labels)) != 2:
        raise InputError(f"train.probe_dataset: {tc.probe_dataset} needs two-class labels (a binary probe); "
                         "give a labelled training set such as vader-movie-train")
    keep = [i for i, t in enumerate(ds.texts) if t.strip()]
    ids = Tokenizer(spec.tokenizer_path, min(tc.max_len, spec.max_positions)).encode(
        [ds.texts[i] for i in keep], truncate=True)
    e = teacher_embeddings(teacher, ids, spec, pad).numpy()
    clf = LogisticRegression(C=4.0, max_iter=2000).fit(e, np.asarray(ds.labels)[keep])
    w = clf.coef_[0]
    return {"w": torch.tensor(w, dtype=torch.float32), "var": float(np.var(e @ w))}


def _losses(s_out, t_out, mask, tc: TrainConfig, cov=None, pooling: str = "mean", normalize: bool = False,
            probe=None) -> dict:
    """Distillation losses of one batch: student / teacher transformers outputs, ``(B, n)`` {0,1} mask;
    ``cov`` the teacher's ``(hidden, hidden)`` embedding covariance (for ``loss_covariance``), ``probe``
    the :func:`fit_probe` result (for ``loss_probe``)."""
    m = mask[..., None].float()
    hs, ht = s_out.last_hidden_state, t_out.last_hidden_state
    hidden = _relative_mse(hs, ht, m)
    es, et = sentence_embedding(hs, mask), sentence_embedding(ht, mask)  # mean-pooled, not normalised
    cosine = (1 - torch.nn.functional.cosine_similarity(es, et, dim=-1)).mean()
    out = {"hidden": hidden, "cosine": cosine}
    total = tc.loss_hidden * hidden + tc.loss_cosine * cosine
    if tc.loss_layers > 0:  # embeddings output and layers 1 .. L-1 (the last one is `hidden`)
        pairs = list(zip(s_out.hidden_states[:-1], t_out.hidden_states[:-1]))
        out["layers"] = sum(_relative_mse(a, b, m) for a, b in pairs) / len(pairs)
        total = total + tc.loss_layers * out["layers"]
    if tc.loss_attention > 0:
        q = mask[:, None, :].float()
        kls = []
        for ps, pt in zip(s_out.attentions, t_out.attentions):  # (B, H, n, n) per layer
            kl = (pt * (torch.log(pt.clamp_min(1e-9)) - torch.log(ps.clamp_min(1e-9)))).sum(-1)  # (B, H, n)
            kls.append((kl * q).sum() / (q.sum() * ps.shape[1]))
        out["attention"] = sum(kls) / len(kls)
        total = total + tc.loss_attention * out["attention"]
    if tc.loss_covariance > 0 or tc.loss_probe > 0:  # the embeddings as the model pools them
        d = sentence_embedding(hs, mask, pooling, normalize) - sentence_embedding(ht, mask, pooling, normalize)
    if tc.loss_covariance > 0:
        out["covariance"] = ((d @ cov) * d).sum(-1).mean() / (cov * cov).sum()
        total = total + tc.loss_covariance * out["covariance"]
    if tc.loss_probe > 0:
        out["probe"] = ((d @ probe["w"]) ** 2).mean() / probe["var"]
        total = total + tc.loss_probe * out["probe"]
    out["total"] = total
    return out


def replacement_probability(tc: TrainConfig, step: int) -> float:
    """Probability that a layer runs the teacher's module at ``step``: ``replace_rate`` falling linearly to 0
    at ``replace_until * steps`` (the student's share rises linearly to 1: the replacement curriculum of
    BERT-of-Theseus, Xu et al. 2020, section 3.3, as sparse progressive distillation uses it)."""
    end = tc.replace_until * tc.steps
    return float(tc.replace_rate) * max(0.0, 1.0 - step / end) if end > 0 else 0.0


def replaced_layers(tc: TrainConfig, step: int, num_layers: int) -> list[bool]:
    """The layers the teacher stands in for at ``step``: independent draws with
    :func:`replacement_probability`, from a generator seeded by ``(seed, step)`` (a resumed run draws the same)."""
    p = replacement_probability(tc, step)
    if p <= 0:
        return [False] * num_layers
    return (np.random.default_rng([tc.seed, 2, step]).random(num_layers) < p).tolist()


def _lr_factor(step: int, steps: int) -> float:
    warm = max(1, steps // 20)
    if step < warm:
        return (step + 1) / warm
    return max(0.1, 1.0 - 0.9 * (step - warm) / max(1, steps - warm))


def finetune(model: str, config=None, out: str | Path | None = None, steps: int | None = None,
             resume: bool = False, stop_after: int | None = None, progress: bool = True) -> dict:
    """Distil the dense fp32 ``model`` into a sparse student and write it to ``out``.

    Args:
        model: recipe name (``minilm-l6``, ``tiny``) or a transformers folder (:func:`padless.models.resolve_model`).
        config: YAML path or mapping (:func:`load_finetune_config`).
        out: output folder (created).
        steps: override ``train.steps`` (the schedule is sized from it).
        resume: continue from the checkpoint in ``out`` (``checkpoint.safetensors`` + ``checkpoint.json``;
            its config must match; InputError otherwise).
        stop_after: stop (after checkpointing) once this many steps are done, without writing the final
            student: an interrupted run, resumable with ``resume=True``.
        progress: progress on stderr (:func:`padless.progress.progress_bar`: a tqdm bar with loss, sparsity
            and ETA on a terminal, plain lines in a log).
    Returns:
        ``{"out", "steps", "seconds", "loss_first", "loss_last", "sparsity", "losses": [(step, total), ...],
        "finished"}``; losses are means over ``checkpoint_every`` windows.
    Raises:
        InputError: bad config, no ``out``, a checkpoint that does not match; UnknownModelError; DataError.
    """
    from ..models import resolve_model
    from ..progress import progress_bar as tqdm  # a bar on a terminal, plain lines in a log
    from .student import SparseStudent, bert_from_spec
    if out is None:
        raise InputError("give an output folder (--out DIR)")
    if stop_after is not None and (isinstance(stop_after, bool) or int(stop_after) < 1):
        raise InputError(f"stop_after must be a positive number of steps, got {stop_after!r}")
    out = Path(out)
    from .. import fsutil
    fsutil.check_target(out / SPARSITY_FILE, out.parent, writable=True)  # a link at --out or in it: refused
    if resume and not has_checkpoint(out):
        old = " (a checkpoint.pt of an older padless is a pickle and is not loaded)" if (out / "checkpoint.pt").is_file() else ""
        raise InputError(f"--resume: no checkpoint at {out / CHECKPOINT}{old}; start without --resume")
    state = load_checkpoint(out) if resume else None  # InputError for a corrupted one, before any work
    sp, tc = load_finetune_config(config)
    if steps is not None:
        tc.steps = int(steps)
        tc.check()
    torch.manual_seed(tc.seed)
    spec, recipe = resolve_model(model)
    teacher = bert_from_spec(spec)
    for p in teacher.parameters():
        p.requires_grad_(False)
    bank = sp["weights"].get("bank")
    if bank and any(w % bank for w in (spec.hidden_size, spec.intermediate_size)):
        raise InputError(f"weight bank {bank} does not divide the layer widths {spec.hidden_size} / "
                         f"{spec.intermediate_size}; choose a bank size that divides both (e.g. 8 or 16)")
    ids = training_ids(spec, tc)
    if len(ids) < tc.batch_size:
        raise InputError(f"{len(ids)} training texts is fewer than one batch of {tc.batch_size}")
    final = float(sp["weights"].get("sparsity", 0.0))
    one_shot = bool(sp["weights"]) and (tc.init == "sparsegpt" or bool(tc.init_from))
    if tc.init_from:  # an earlier student: its zero pattern is the (fixed) mask
        from ..frontend.hf import load_hf
        start = bert_from_spec(load_hf(tc.init_from))
    elif one_shot and not resume:
        # SparseGPT at the final ratio on a seeded sample of the training sentences; masks then stay fixed.
        pick = np.random.default_rng([tc.seed, 1]).choice(len(ids), min(len(ids), tc.calib_sentences),
                                                          replace=False)
        with tqdm(total=spec.num_layers * len(LINEAR_NAMES), desc="sparsegpt init", unit="linear",
                  disable=not progress, dynamic_ncols=True) as bar:
            pruned = prune_spec(spec, {**sp["weights"], "criterion": "sparsegpt"},
                                token_ids=[ids[i] for i in pick], progress=lambda i, name: bar.update(1))
        start = bert_from_spec(pruned)      # weights permute: prune_spec reordered the channels first
    elif sp["weights"].get("permute"):
        # magnitude masks grow on the teacher with its pe-pair rows paired (the same function: the teacher's
        # hidden states and attention maps, the distillation targets, are those of the reordered copy)
        from ..sparse.permute import permute_spec
        start = bert_from_spec(permute_spec(spec, {**sp["weights"], "criterion": "magnitude"})[0])
    else:
        start = copy.deepcopy(teacher)
    student = SparseStudent(start, sp["weights"], sp["attention"])
    if tc.replace_rate > 0:
        student.enable_replacement(teacher)
    for p in student.parameters():
        p.requires_grad_(True)
    student.train()
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=tc.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, tc.steps))
    ramp_steps = 0 if one_shot else int(round(tc.ramp * tc.steps))
    run_id = {"model": model, "sparsity": sp, "train": asdict(tc)}
    fsutil.make_dirs(out, out.parent)
    ckpt = out / CHECKPOINT
    step, history, window = 0, [], []
    if resume:
        if not isinstance(state, dict) or state.get("run") != _json_round_trip(run_id):
            raise InputError(f"--resume: {ckpt} was written by a different model/config; use a new --out or "
                             "the same config")
        student.load_state_dict(state["student"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step, history = state["step"], [tuple(h) for h in state["history"]]
    else:
        nonzero = sum(int((mod.weight != 0).sum()) for mods in student.linears for mod in mods)
        student.update_masks(cubic_sparsity(0, ramp_steps, final) / final if final else 0.0)
        kept = sum(int((mod.weight != 0).sum()) for mods in student.linears for mod in mods)
        if tc.init_from and kept < nonzero:
            raise InputError(f"train.init_from: {tc.init_from} keeps {nonzero} weights, but the config's "
                             f"bank-balanced masks keep {kept}: give the `weights:` section it was trained with")
    pad = spec.pad_token_id if spec.pad_token_id is not None else 0
    cov = None
    if tc.loss_covariance > 0:
        if resume:
            cov = state["covariance"]
        else:
            pick = np.random.default_rng([tc.seed, 2]).choice(len(ids), min(len(ids), tc.covariance_texts),
                                                              replace=False)
            cov = embedding_covariance(teacher, [ids[i] for i in np.sort(pick)], spec, pad)
    probe = None
    if tc.loss_probe > 0:
        probe = state["probe"] if resume else fit_probe(teacher, spec, tc, pad)
    qat_start = tc.steps - tc.qat_steps
    fq = None
    if tc.qat_steps:
        from ..data.datasets import calibration_texts
        from ..models import Tokenizer
        from .qat import FakeQuant
        cal = {**(recipe.calibration or {}), **tc.calibration}
        texts, _ = calibration_texts(cal)
        fq = FakeQuant(student, Tokenizer(spec.tokenizer_path, spec.max_positions).encode(texts, truncate=True),
                       name=spec.name, tokenizer_path=spec.tokenizer_path, quant=recipe.quant or {})
        if resume and step > qat_start:
            fq.load_state(state["qat"])
            fq.attach(calibrate=False)

    def save_ckpt():
        save_checkpoint({"run": _json_round_trip(run_id), "student": student.state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(), "step": step,
                         "history": history, "qat": fq.state() if fq is not None and step > qat_start else None,
                         "covariance": cov, "probe": probe}, out)

    per_epoch = len(ids) // tc.batch_size
    if tc.augment > 0:
        from .augment import augment_batch, continuation_mask
        cont = continuation_mask(spec.tokenizer_path)
        max_len = min(tc.max_len, spec.max_positions)
    t0 = time.perf_counter()
    end = tc.steps if stop_after is None else min(tc.steps, int(stop_after))
    with tqdm(total=tc.steps, initial=step, desc="finetune", unit="step", disable=not progress,
              dynamic_ncols=True) as bar:
        while step < end:
            if fq is not None and step >= qat_start and (step - qat_start) % tc.qat_calibrate_every == 0:
                fq.attach()  # calibrate the int8 scales on the current weights (hooks installed once)
            perm = np.random.default_rng([tc.seed, step // per_epoch]).permutation(len(ids))
            aug = None
            if tc.augment > 0:
                rng = np.random.default_rng([tc.seed, 3, step])
                aug = lambda sel: augment_batch(sel, ids, tc.augment, rng, cont, max_len)  # noqa: E731
            x, m = _batch(ids, perm, step % per_epoch, tc.batch_size, pad, aug)
            if tc.replace_rate > 0:
                student.set_replaced(replaced_layers(tc, step, spec.num_layers))
            want = {"output_attentions": tc.loss_attention > 0, "output_hidden_states": tc.loss_layers > 0}
            with torch.no_grad():
                t_out = teacher(input_ids=x, attention_mask=m, token_type_ids=torch.zeros_like(x), **want)
            want["output_hidden_states"] = True  # the output object (hidden states are kept by the graph anyway)
            losses = _losses(student(x, m, **want), t_out, m, tc, cov, spec.pooling, spec.normalize, probe)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            student.mask_grads()
            opt.step()
            sched.step()
            student.apply_masks()
            step += 1
            if final and step <= ramp_steps and (step % tc.mask_every == 0 or step == ramp_steps):
                student.update_masks(cubic_sparsity(step, ramp_steps, final) / final)
            window.append(losses["total"].item())
            if step % tc.checkpoint_every == 0 or step == end:
                history.append((step, float(np.mean(window))))
                window = []
                save_ckpt()
            bar.set_postfix(loss=f"{losses['total'].item():.4f}", cos=f"{losses['cosine'].item():.4f}",
                            sparsity=f"{student.sparsity():.3f}" if final else "0",
                            **({"qat": "int8"} if fq is not None and step > qat_start else {}))
            bar.update(1)
    seconds = time.perf_counter() - t0
    finished = step >= tc.steps
    if fq is not None:
        fq.remove()
    if tc.replace_rate > 0:
        student.set_replaced([False] * spec.num_layers)
    if finished:
        if final:
            student.update_masks(1.0)  # exactly the final bank-balanced masks (a no-op after the ramp)
        _write_student(student, spec, sp, out, {"teacher": model, "steps": tc.steps, "train": asdict(tc),
                                                **({"calibration": tc.calibration} if tc.calibration else {}),
                                                "losses": history, "seconds": round(seconds, 1)})
    return {"out": str(out), "steps": step, "seconds": seconds, "loss_first": history[0][1] if history else None,
            "loss_last": history[-1][1] if history else None, "sparsity": student.sparsity(),
            "losses": history, "finished": finished}


def _json_round_trip(obj):
    """``obj`` as it reads back from JSON (tuples become lists): the form a checkpoint's ``run`` is
    compared in."""
    return json.loads(json.dumps(obj))


def _write_student(student, spec, sp: dict, out: Path, record: dict) -> None:
    bert = student.bert
    bert.config._attn_implementation = "eager"
    bert.config.architectures = ["BertModel"]
    import tempfile

    from .. import fsutil
    # transformers writes into a fresh private folder inside ``out``; each file then goes into place with
    # padless.fsutil (atomic, never through a link at its name)
    tmp = Path(tempfile.mkdtemp(prefix=fsutil.TMP_MARK, dir=out))
    try:
        bert.save_pretrained(str(tmp), safe_serialization=True)
        for f in sorted(tmp.iterdir()):
            if f.is_file() and not f.is_symlink():
                fsutil.copy_file(f, out / f.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    bert.config._attn_implementation = student._attn_name
    if spec.tokenizer_path:
        for f in TOKENIZER_FILES:
            src = Path(spec.tokenizer_path) / f
            if src.is_file():
                fsutil.copy_file(src, out / f, out)
    fsutil.write_text(out / SPARSITY_FILE, json.dumps({"sparsity": sp, **record}, indent=1) + "\n", out)
