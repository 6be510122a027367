"""Frontend for BERT-family encoders stored as ONNX (``torch.onnx.export``, dynamo or TorchScript exporter).

The importer pattern-matches the *data path* of the graph, walking backwards from the output (each
tensor has exactly one producer, so the walk is unambiguous) and ignoring the shape sub-graphs the
exporters emit around it. Per layer it recognises:

* **linear**: ``Add(MatMul(x, W), b)`` (either operand order), bias-free ``MatMul(x, W)``, or
  ``Gemm(x, W, b)`` (``transB`` 0/1, alpha = beta = 1). ONNX stores ``W`` as ``(in, out)`` (MatMul) or
  ``(out, in)`` (Gemm transB=1); the spec always gets torch's ``(out, in)``.
* **attention**: ``MatMul(Softmax(scale * MatMul(Q, K^T) [+ mask]), V)`` with Q/K/V reached from linears
  through Reshape / Transpose / Squeeze / Unsqueeze (head split), constant scale factors (``Mul`` /
  ``Div``, also the split ``sqrt(scale)`` on both Q and K of the SDPA decomposition), a packed QKV
  projection selected by ``Gather`` / ``Split`` / ``Slice`` (torch ``MultiheadAttention``), the mask
  ``Add`` / ``Where`` and the NaN guard ``Where(IsNaN(p), 0, p)``. The padding mask is dropped: padless
  never pads. A non-standard scale is folded into Q (recorded in ``spec.source``).
* **LayerNorm**: fused ``LayerNormalization`` (opset 17+) or the decomposed
  ``(x - mean) / sqrt(var + eps) * gamma + beta`` (``ReduceMean``/``Sub``/``Pow``/``Sqrt``/``Div``).
* **activation**: the element-wise sub-graph between the FFN up and down projections is evaluated
  numerically and compared with erf GELU (``Gelu`` op or ``0.5 x (1 + erf(x / sqrt 2))``), ReLU, and tanh
  GELU (``Gelu(approximate='tanh')`` or its ``Tanh`` form: imported as erf GELU with a warning, max
  difference 4.7e-4 - below the int8 i-GELU's own error).
* **residual blocks**: post-norm (BERT) or pre-norm, a final LayerNorm, and the embedding sum of
  ``Gather``-s (word ids from a graph input, positions from ``Range``/``Slice``/constant indices, token
  type row 0) with an optional scale and embedding LayerNorm.

Anything else raises :class:`~padless.errors.UnknownModelError` naming the first node (in walk order)
that did not match and why. :func:`verify_onnx_import` re-runs the ONNX graph in onnxruntime and checks
the spec's fp32 reference against it; :func:`load_onnx` does so by default when onnxruntime is installed.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import InputError, UnknownModelError
from ..ir import EmbeddingSpec, EncoderSpec, LayerNormSpec, LayerSpec, LinearSpec, SpecError

#: Used when the graph has no positional table.
DEFAULT_MAX_POSITIONS = 512
#: Ops that only move or relabel data (no arithmetic); the matcher looks through them.
LAYOUT_OPS = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Flatten", "Expand"}
_FOLDABLE = {"Identity", "Cast", "Transpose", "Gather", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Slice",
             "Range", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "ConstantOfShape"}
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh", "Relu", "Gelu", "Sigmoid", "Neg",
                "Reciprocal", "Exp", "Max", "Min", "Identity", "Cast", "Abs", "Clip"}


class MatchError(Exception):
    """Internal: a node that did not match the expected pattern (node, reason)."""

    def __init__(self, node: Any, reason: str):
        super().__init__(reason)
        self.node, self.reason = node, reason


def _describe(node: Any) -> str:
    if node is None:
        return "a graph input or initializer"
    return f"node {node.name or '<unnamed>'!r} ({node.op_type})"


def _clean_eps(eps: float) -> float:
    """ONNX stores epsilon as float32 (1e-12 -> 9.99999996e-13); take the shortest decimal that rounds
    to the same float32, which is what the source framework held (1e-12, 1e-5)."""
    return float(str(np.float32(eps)))


def looks_like_onnx(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file ending in ``.onnx`` (case-insensitive)."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() == ".onnx"


@dataclass
class _Lin:
    """A matched linear: the input tensor name, the spec, and the node that produced its output."""

    x: str
    spec: LinearSpec
    node: Any


class _Graph:
    """Index of an ONNX graph: producers, constants (folded lazily), inferred shapes."""

    def __init__(self, model: Any):
        import onnx
        from onnx import numpy_helper

        self.onnx = onnx
        g = model.graph
        self.g = g
        self.producer = {o: n for n in g.node for o in n.output if o}
        self.inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.inits]
        self.input_types = {i.name: i.type.tensor_type.elem_type for i in g.input}
        self._cache: dict[str, Optional[np.ndarray]] = {}
        self.shapes: dict[str, list] = {}
        try:  # shapes help constant-fold Shape -> Gather chains (head_dim in MHA exports)
            stripped = onnx.ModelProto()
            stripped.CopyFrom(model)
            for init in stripped.graph.initializer:  # keep dims and types, drop the bytes
                init.ClearField("raw_data")
                init.ClearField("float_data")
                init.data_location = onnx.TensorProto.DEFAULT
                del init.external_data[:]
            stripped.graph.ClearField("initializer")
            for name, arr in self.inits.items():  # tiny initializers keep their values (shape constants)
                if arr.size <= 64:
                    stripped.graph.initializer.append(numpy_helper.from_array(arr, name))
                else:
                    vi = onnx.helper.make_tensor_value_info(
                        name, onnx.helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape))
                    stripped.graph.input.append(vi)
            inferred = onnx.shape_inference.infer_shapes(stripped, data_prop=True)
            for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
                dims = v.type.tensor_type.shape.dim
                self.shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        except Exception:  # shape inference is a help, never a requirement
            pass

    def prod(self, t: str) -> Any:
        return self.producer.get(t)

    def attr(self, node: Any, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                return self.onnx.helper.get_attribute_value(a)
        return default

    # ---- constant folding (values fully or partly known; unknown shape dims are NaN) ----
    def const(self, t: str) -> Optional[np.ndarray]:
        """The value of ``t`` if it is computable from constants (NaN marks unknown shape dims)."""
        if t in self._cache:
            return self._cache[t]
        self._cache[t] = None  # cycle guard
        val = self._fold(t)
        self._cache[t] = val
        return val

    def full_const(self, t: str) -> Optional[np.ndarray]:
        v = self.const(t)
        if v is None or (v.dtype.kind == "f" and v.size and np.isnan(v).any() and t not in self.inits):
            return None
        return v

    def _fold(self, t: str) -> Optional[np.ndarray]:
        if not t:
            return None
        if t in self.inits:
            return self.inits[t]
        n = self.prod(t)
        if n is None:
            return None
        op = n.op_type
        if op == "Constant":
            from onnx import numpy_helper
            for a in n.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
                if a.name in ("value_float", "value_int"):
                    return np.array(self.onnx.helper.get_attribute_value(a))
                if a.name in ("value_floats", "value_ints"):
                    return np.array(list(self.onnx.helper.get_attribute_value(a)))
            return None
        if op == "Shape":
            dims = self.shapes.get(n.input[0])
            src = self.prod(n.input[0])
            target = self.const(src.input[1]) if src is not None and src.op_type == "Reshape" else None
            if target is not None and target.ndim == 1 and (dims is None or len(dims) == target.size):
                # a Reshape's partly-constant target fills dims that shape inference left symbolic
                dims = [d if d is not None else (int(v) if not np.isnan(float(v)) and v > 0 else None)
                        for d, v in zip(dims or [None] * target.size, target.astype(np.float64))]
            if dims is None:
                return None
            arr = np.array([np.nan if d is None else d for d in dims], dtype=np.float64)
            start, end = self.attr(n, "start", 0), self.attr(n, "end", None)
            return arr[start:end]
        if op not in _FOLDABLE:  # data-path ops: never constant, and stops deep recursion early
            return None
        ins = [self.const(i) if i else None for i in n.input]
        try:
            if op in ("Identity", "Cast"):
                if ins[0] is None:
                    return None
                if op == "Cast":
                    to = self.attr(n, "to")
                    dt = self.onnx.helper.tensor_dtype_to_np_dtype(to)
                    if ins[0].dtype.kind == "f" and np.isnan(ins[0]).any():
                        return ins[0].astype(np.float64)  # partly known shape values stay float/NaN
                    return ins[0].astype(dt)
                return ins[0]
            if op == "Transpose" and ins[0] is not None:
                return np.transpose(ins[0], self.attr(n, "perm"))
            if op == "Gather" and ins[0] is not None and ins[1] is not None and ins[0].size <= 4096:
                # shape arithmetic only: an embedding lookup with constant ids is not folded
                return np.take(ins[0], ins[1].astype(np.int64), axis=self.attr(n, "axis", 0))
            if op == "Concat" and all(i is not None for i in ins):
                common = np.result_type(*ins)
                return np.concatenate([np.atleast_1d(i).astype(common) for i in ins], axis=self.attr(n, "axis", 0))
            if op == "Unsqueeze" and ins[0] is not None:
                axes = self.attr(n, "axes") if len(ins) < 2 or ins[1] is None else ins[1].tolist()
                out = ins[0]
                for a in sorted(int(a) % (out.ndim + len(axes)) for a in axes):
                    out = np.expand_dims(out, a)
                return out
            if op == "Squeeze" and ins[0] is not None:
                axes = self.attr(n, "axes") if len(ins) < 2 or ins[1] is None else ins[1].tolist()
                return np.squeeze(ins[0], axis=tuple(axes) if axes is not None else None)
            if op == "Reshape" and ins[0] is not None and ins[1] is not None and not np.isnan(
                    ins[1].astype(np.float64)).any():
                shape = [int(s) for s in ins[1]]
                shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
                return ins[0].reshape(shape)
            if op == "Slice" and ins[0] is not None and all(i is not None for i in ins[1:3]):
                axes = ins[3].tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(ins[1])))
                steps = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(axes)
                sl = [slice(None)] * ins[0].ndim
                for s, e, a, st in zip(ins[1].tolist(), ins[2].tolist(), axes, steps):
                    sl[int(a)] = slice(int(s), int(min(e, 2**62)) if e > 0 else int(e), int(st))
                return ins[0][tuple(sl)]
            if op == "Range" and all(i is not None for i in ins):
                return np.arange(ins[0].item(), ins[1].item(), ins[2].item())
            if op in ("Add", "Sub", "Mul", "Div", "Pow") and ins[0] is not None and ins[1] is not None:
                a, b = ins
                if op == "Div" and a.dtype.kind in "iu" and b.dtype.kind in "iu":
                    return a // b
                return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
                        "Pow": np.power}[op](a, b)
            if op in ("Sqrt", "Reciprocal", "Neg") and ins[0] is not None:
                return {"Sqrt": np.sqrt, "Reciprocal": np.reciprocal, "Neg": np.negative}[op](ins[0])
            if op == "ConstantOfShape" and ins[0] is not None and not np.isnan(ins[0].astype(float)).any():
                from onnx import numpy_helper
                v = self.attr(n, "value")
                fill = numpy_helper.to_array(v).reshape(()) if v is not None else np.float32(0)
                return np.full([int(s) for s in ins[0]], fill)
        except (ValueError, TypeError, IndexError):
            return None
        return None

    def scalar(self, t: str) -> Optional[float]:
        v = self.full_const(t)
        if v is None or v.size != 1:
            return None
        return float(v.reshape(()))

    def strip(self, t: str, ops=LAYOUT_OPS) -> str:
        """Follow ``t`` back through layout-only ops (and float Cast) to the tensor that holds the data."""
        while True:
            n = self.prod(t)
            if n is None or (self.full_const(t) is not None):
                return t
            if n.op_type in ops or (n.op_type == "Cast" and self.attr(n, "to") in (1, 10, 11)):
                t = n.input[0]
                continue
            return t

    def describe(self, t: str) -> str:
        return _describe(self.prod(t))


# ------------------------------------------------------------------------------------------ matchers

def _match_linear(G: _Graph, t: str) -> Optional[_Lin]:
    """``t`` (after layout ops) is the output of a linear layer with constant weight -> _Lin, else None."""
    t = G.strip(t)
    n = G.prod(t)
    if n is None:
        return None
    if n.op_type == "Add":
        for i in (0, 1):
            b = G.full_const(n.input[i])
            if b is None or b.size < 1:
                continue
            inner = _match_linear_core(G, n.input[1 - i])
            if inner is not None and b.size == inner.spec.out_features:
                x, w, node = inner.x, inner.spec.weight, inner.node
                return _Lin(x, LinearSpec(weight=w, bias=(b.reshape(-1) + inner.spec.bias).astype(np.float32)), n)
        return None
    return _match_linear_core(G, t)


def _match_linear_core(G: _Graph, t: str) -> Optional[_Lin]:
    n = G.prod(t)
    if n is None:
        return None
    if n.op_type == "MatMul":
        w = G.full_const(n.input[1])
        if w is None or w.ndim != 2 or G.full_const(n.input[0]) is not None:
            return None
        w = np.ascontiguousarray(w.T.astype(np.float32))
        return _Lin(n.input[0], LinearSpec(weight=w, bias=np.zeros(w.shape[0], np.float32)), n)
    if n.op_type == "Gemm":
        w = G.full_const(n.input[1])
        if w is None or w.ndim != 2 or G.attr(n, "transA", 0):
            return None
        if G.attr(n, "alpha", 1.0) != 1.0 or G.attr(n, "beta", 1.0) != 1.0:
            return None
        w = w if G.attr(n, "transB", 0) else w.T
        w = np.ascontiguousarray(w.astype(np.float32))
        b = G.full_const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        bias = b.reshape(-1).astype(np.float32) if b is not None else np.zeros(w.shape[0], np.float32)
        if bias.size != w.shape[0]:
            return None
        return _Lin(n.input[0], LinearSpec(weight=w, bias=bias), n)
    return None


def _match_ln(G: _Graph, t: str) -> Optional[tuple[str, LayerNormSpec]]:
    """``t`` is a LayerNorm output (fused or decomposed) -> ``(input, LayerNormSpec)``, else None."""
    n = G.prod(G.strip(t, {"Identity", "Dropout"}))
    if n is None:
        return None
    if n.op_type == "LayerNormalization":
        if G.attr(n, "axis", -1) not in (-1, len(G.shapes.get(n.input[0]) or [0, 0, 0]) - 1):
            return None
        gamma = G.full_const(n.input[1])
        beta = G.full_const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if gamma is None:
            return None
        gamma = gamma.reshape(-1).astype(np.float32)
        beta = beta.reshape(-1).astype(np.float32) if beta is not None else np.zeros_like(gamma)
        return n.input[0], LayerNormSpec(gamma=gamma.copy(), beta=beta.copy(),
                                         eps=_clean_eps(G.attr(n, "epsilon", 1e-5)))
    # decomposed: [Add(beta)] [Mul(gamma)] Div(d, Sqrt(Add(ReduceMean(Pow(d, 2)), eps)))
    gamma = beta = None
    cur = n
    if cur.op_type == "Add":
        c = [G.full_const(i) for i in cur.input]
        if (c[0] is None) == (c[1] is None):
            return None
        k = 0 if c[0] is not None else 1
        beta, cur = c[k], G.prod(cur.input[1 - k])
    if cur is not None and cur.op_type == "Mul":
        c = [G.full_const(i) for i in cur.input]
        if (c[0] is None) != (c[1] is None):
            k = 0 if c[0] is not None else 1
            gamma, cur = c[k], G.prod(cur.input[1 - k])
    if cur is None:
        return None
    if cur.op_type == "Div":
        d, sq = cur.input[0], G.prod(cur.input[1])
    elif cur.op_type == "Mul":
        r = [G.prod(i) for i in cur.input]
        k = next((j for j in (0, 1) if r[j] is not None and r[j].op_type == "Reciprocal"), None)
        if k is None:
            return None
        d, sq = cur.input[1 - k], G.prod(r[k].input[0])
    else:
        return None
    if sq is None or sq.op_type != "Sqrt":
        return None
    add = G.prod(sq.input[0])
    if add is None or add.op_type != "Add":
        return None
    c = [G.full_const(i) for i in add.input]
    if (c[0] is None) == (c[1] is None):
        return None
    eps = float(c[0] if c[0] is not None else c[1])
    var = G.prod(add.input[1] if c[0] is not None else add.input[0])
    if var is None or var.op_type != "ReduceMean":
        return None
    sqr = G.prod(var.input[0])
    if sqr is None or not ((sqr.op_type == "Pow" and G.scalar(sqr.input[1]) == 2.0 and sqr.input[0] == d)
                           or (sqr.op_type == "Mul" and sqr.input[0] == d and sqr.input[1] == d)):
        return None
    sub = G.prod(d)
    if sub is None or sub.op_type != "Sub":
        return None
    mean = G.prod(sub.input[1])
    if mean is None or mean.op_type != "ReduceMean" or mean.input[0] != sub.input[0]:
        return None
    for rm in (mean, var):
        axes = G.attr(rm, "axes")
        if axes is None and len(rm.input) > 1:
            ax = G.full_const(rm.input[1])
            axes = ax.tolist() if ax is not None else None
        rank = len(G.shapes.get(rm.input[0]) or [])
        if axes is None or len(axes) != 1 or axes[0] not in (-1, rank - 1):
            return None
    H = None
    for v in (gamma, beta):
        if v is not None:
            H = v.size
    if H is None:
        dims = G.shapes.get(sub.input[0]) or [None]
        H = dims[-1]
        if H is None:
            return None
    gamma = np.ones(H, np.float32) if gamma is None else gamma.reshape(-1).astype(np.float32)
    beta = np.zeros(H, np.float32) if beta is None else beta.reshape(-1).astype(np.float32)
    return sub.input[0], LayerNormSpec(gamma=gamma.copy(), beta=beta.copy(), eps=_clean_eps(eps))


def _split_residual(G: _Graph, t: str) -> Optional[tuple[str, _Lin]]:
    """``t`` = ``Add(residual, linear(...))`` -> ``(residual, linear)``, else None."""
    n = G.prod(G.strip(t, {"Identity", "Dropout"}))
    if n is None or n.op_type != "Add":
        return None
    lins = [None if G.full_const(i) is not None else _match_linear(G, i) for i in n.input]
    if (lins[0] is None) == (lins[1] is None):
        return None
    k = 0 if lins[0] is not None else 1
    return n.input[1 - k], lins[k]


_GELU_TANH_C = math.sqrt(2.0 / math.pi)


def _activation(G: _Graph, a: str, block: str) -> tuple[str, _Lin]:
    """The element-wise activation feeding the FFN down projection: returns ``(name, up-linear)``.

    The sub-graph from the up projection's output ``u`` to ``a`` is evaluated on x in [-8, 8] and
    compared with erf GELU, ReLU and tanh GELU.
    """
    from scipy.special import erf

    # find u: the nearest linear output upstream of a through element-wise nodes
    frontier, seen, u, order = [a], set(), None, []
    while frontier:
        t = frontier.pop(0)
        if t in seen:
            continue
        seen.add(t)
        lin = _match_linear(G, t) if G.full_const(t) is None else None
        if lin is not None:
            u = t
            up = lin
            break
        n = G.prod(t)
        if n is None or G.full_const(t) is not None:
            continue
        if n.op_type not in _ELEMENTWISE:
            raise MatchError(n, f"{block}: expected an element-wise activation (GELU / ReLU) between the FFN "
                                f"projections, found {n.op_type}")
        frontier.extend(i for i in n.input if i)
    if u is None:
        raise MatchError(G.prod(a), f"{block}: no FFN up projection (MatMul with constant weight) found "
                                    "before the activation")
    x = np.linspace(-8.0, 8.0, 321)
    memo: dict[str, np.ndarray] = {}

    def ev(t: str) -> np.ndarray:
        if t == u:
            return x
        if t in memo:
            return memo[t]
        c = G.full_const(t)
        if c is not None:
            return c.astype(np.float64)
        n = G.prod(t)
        if n is None or n.op_type not in _ELEMENTWISE:
            raise MatchError(n, f"{block}: the activation depends on a tensor other than the FFN up projection")
        i = [ev(v) if v else None for v in n.input]
        op = n.op_type
        if op == "Gelu":
            approx = G.attr(n, "approximate", b"none")
            approx = approx.decode() if isinstance(approx, bytes) else approx
            r = (0.5 * i[0] * (1 + np.tanh(_GELU_TANH_C * (i[0] + 0.044715 * i[0] ** 3)))) if approx == "tanh" \
                else 0.5 * i[0] * (1 + erf(i[0] / math.sqrt(2)))
        elif op == "Clip":
            lo = i[1] if len(i) > 1 and i[1] is not None else G.attr(n, "min", -np.inf)
            hi = i[2] if len(i) > 2 and i[2] is not None else G.attr(n, "max", np.inf)
            r = np.clip(i[0], lo, hi)
        else:
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power,
                 "Sqrt": np.sqrt, "Erf": erf, "Tanh": np.tanh, "Relu": lambda v: np.maximum(v, 0),
                 "Sigmoid": lambda v: 1 / (1 + np.exp(-v)), "Neg": np.negative, "Reciprocal": np.reciprocal,
                 "Exp": np.exp, "Max": np.maximum, "Min": np.minimum, "Identity": lambda v: v,
                 "Cast": lambda v: v, "Abs": np.abs}[op]
            r = f(*[v for v in i if v is not None])
        memo[t] = np.asarray(r, dtype=np.float64)
        return memo[t]

    with np.errstate(all="ignore"):
        y = ev(a)
    gelu = 0.5 * x * (1 + erf(x / math.sqrt(2)))
    gelu_tanh = 0.5 * x * (1 + np.tanh(_GELU_TANH_C * (x + 0.044715 * x ** 3)))
    if y.shape == x.shape and np.allclose(y, gelu, atol=1e-6, rtol=0):
        return "gelu", up
    if y.shape == x.shape and np.allclose(y, np.maximum(x, 0), atol=1e-7, rtol=0):
        return "relu", up
    if y.shape == x.shape and np.allclose(y, gelu_tanh, atol=1e-6, rtol=0):
        warnings.warn(f"{block}: tanh-approximate GELU imported as erf GELU (max difference "
                      f"{np.abs(gelu - gelu_tanh).max():.1e}); padless implements the erf form (I-BERT i-GELU)",
                      stacklevel=3)
        return "gelu_tanh", up
    raise MatchError(G.prod(a), f"{block}: the activation is neither GELU (erf or tanh form) nor ReLU")


def _walk_select(G: _Graph, t: str, H: Optional[int]) -> tuple[str, Optional[int], float, list]:
    """From a Q/K/V head tensor back to the projection output. Returns ``(tensor, chunk, scale, reshapes)``:
    ``chunk`` is the index of the Q/K/V slice of a packed projection (Gather/Split/Slice), ``scale`` the
    product of constant Mul/Div factors on the way, ``reshapes`` the Reshape nodes passed (nearest first)."""
    chunk, scale, reshapes = None, 1.0, []
    while True:
        n = G.prod(t)
        if n is None or G.full_const(t) is not None:
            raise MatchError(n, "expected a Q/K/V projection upstream of the attention MatMul")
        op = n.op_type
        if _match_linear(G, t) is not None and op not in ("Reshape", "Transpose"):
            return t, chunk, scale, reshapes
        if op in LAYOUT_OPS or (op == "Cast" and G.attr(n, "to") in (1, 10, 11)):
            if op == "Reshape":
                reshapes.append(n)
            t = n.input[0]
        elif op in ("Mul", "Div"):
            t, scale = _fold_constant_scale(G, n, scale, "on the Q/K path")
        elif op == "Gather":
            idx = G.full_const(n.input[1])
            if idx is None or idx.size != 1 or chunk is not None:
                raise MatchError(n, "attention: Gather with non-constant or non-scalar index on the Q/K/V path")
            chunk = int(idx.reshape(()))
            t = n.input[0]
        elif op == "Split":
            if chunk is not None:
                raise MatchError(n, "attention: two selections on the Q/K/V path")
            chunk = list(n.output).index(t)
            t = n.input[0]
        elif op == "Slice":
            starts = G.full_const(n.input[1])
            if starts is None or starts.size != 1 or not H or int(starts.reshape(())) % H or chunk is not None:
                raise MatchError(n, "attention: Slice of a packed projection not on a hidden-size boundary")
            chunk = int(starts.reshape(())) // H
            t = n.input[0]
        else:
            if _match_linear(G, t) is not None:
                return t, chunk, scale, reshapes
            raise MatchError(n, f"attention: unexpected {op} between a projection and the attention MatMul")


def _fold_constant_scale(G: _Graph, n, scale: float, where: str) -> tuple[str, float]:
    """Walk back through ``Mul(x, c)`` / ``Mul(c, x)`` / ``Div(x, c)`` with a constant scalar ``c``:
    returns ``(x, scale * c or scale / c)``; raises MatchError for a non-constant factor."""
    op = n.op_type
    c = [G.scalar(i) for i in n.input]
    if op == "Mul" and (c[0] is None) != (c[1] is None):
        k = 0 if c[0] is not None else 1
        return n.input[1 - k], scale * c[k]
    if op == "Div" and c[1] is not None and c[0] is None:
        return n.input[0], scale / c[1]
    raise MatchError(n, f"attention: {op} by a non-constant factor {where}")


def _scores(G: _Graph, t: str) -> tuple[Any, float]:
    """From the Softmax input back to ``MatMul(Q, K^T)``; returns ``(matmul node, scale)``."""
    scale = 1.0
    while True:
        n = G.prod(t)
        if n is None:
            raise MatchError(None, "attention: the Softmax input does not come from MatMul(Q, K^T)")
        op = n.op_type
        if op == "MatMul" and all(G.full_const(i) is None for i in n.input):
            return n, scale
        if op in ("Identity", "Cast", "Dropout"):
            t = n.input[0]
        elif op in ("Mul", "Div"):
            t, scale = _fold_constant_scale(G, n, scale, "of the scores")
        elif op in ("Add", "Where"):
            cands = list(n.input) if op == "Add" else [n.input[1], n.input[2]]
            for cand in cands:  # the branch that reaches MatMul(Q, K^T); the other is the mask
                if G.full_const(cand) is not None:
                    continue
                try:
                    mm, s = _scores(G, cand)
                    return mm, scale * s
                except MatchError:
                    continue
            raise MatchError(n, f"attention: neither input of this {op} reaches MatMul(Q, K^T)")
        else:
            raise MatchError(n, f"attention: unexpected {op} between MatMul(Q, K^T) and Softmax")


def _probs(G: _Graph, t: str) -> Any:
    """From the PV MatMul's left input back to the Softmax node (through the NaN guard / Cast / Dropout)."""
    while True:
        n = G.prod(t)
        if n is None:
            raise MatchError(None, "attention: the probabilities do not come from a Softmax")
        if n.op_type == "Softmax":
            return n
        if n.op_type in ("Identity", "Cast", "Dropout"):
            t = n.input[0]
        elif n.op_type == "Where":
            data = [i for i in n.input[1:] if G.full_const(i) is None]
            if len(data) != 1:
                raise MatchError(n, "attention: Where after Softmax that is not a NaN guard")
            t = data[0]
        else:
            raise MatchError(n, f"attention: expected Softmax before the attention-weighted sum, found {n.op_type}")


def _head_dim(G: _Graph, reshapes: list, H: int, q_in: str) -> Optional[int]:
    for r in reshapes:
        shape = G.const(r.input[1])
        if shape is not None and shape.size >= 3:
            d = shape.reshape(-1)[-1]
            if not np.isnan(float(d)) and int(d) > 0 and H % int(d) == 0 and int(d) < H:
                return int(d)
    dims = G.shapes.get(q_in)
    if dims and dims[-1] and H % dims[-1] == 0 and dims[-1] < H:
        return int(dims[-1])
    return None


@dataclass
class _Attn:
    x: str
    q: LinearSpec
    k: LinearSpec
    v: LinearSpec
    num_heads: int
    scale_folded: float


def _attention(G: _Graph, ctx: str, H: int, block: str) -> _Attn:
    """Match the attention whose context (input of the output projection) is ``ctx``."""
    c = G.strip(ctx)
    pv = G.prod(c)
    if pv is None or pv.op_type != "MatMul" or any(G.full_const(i) is not None for i in pv.input):
        raise MatchError(pv, f"{block}: expected the attention context MatMul(softmax, V) before the output "
                             "projection")
    sm = _probs(G, pv.input[0])
    axis = G.attr(sm, "axis", -1)
    rank = len(G.shapes.get(sm.input[0]) or [])
    if axis not in (-1, rank - 1):
        raise MatchError(sm, f"{block}: Softmax over axis {axis}, expected the key axis (-1)")
    qk, s_scale = _scores(G, sm.input[0])
    tq, cq, sq, rq = _walk_select(G, qk.input[0], H)
    tk, ck, sk, _ = _walk_select(G, qk.input[1], H)
    tv, cv, sv, _ = _walk_select(G, pv.input[1], H)
    if sv != 1.0:
        raise MatchError(pv, f"{block}: V is scaled by {sv}; expected the plain V projection")
    lins = []
    for t, ch, what in ((tq, cq, "Q"), (tk, ck, "K"), (tv, cv, "V")):
        lin = _match_linear(G, t)
        spec = lin.spec
        if spec.out_features == 3 * H and ch is not None:
            rows = slice(ch * H, (ch + 1) * H)  # chunk ch of torch's packed in_proj (q, k, v order)
            spec = LinearSpec(weight=spec.weight[rows].copy(), bias=spec.bias[rows].copy())
        if spec.out_features != H:
            raise MatchError(lin.node, f"{block}: {what} projection has {spec.out_features} outputs, expected {H}")
        lins.append((G.strip(lin.x), spec))
    if len({x for x, _ in lins}) != 1:
        raise MatchError(qk, f"{block}: Q, K and V are not computed from the same input")
    if cq is not None and len({cq, ck, cv}) != 3:
        raise MatchError(qk, f"{block}: the packed QKV projection is not split into three distinct chunks")
    d = _head_dim(G, rq, H, qk.input[0])
    if d is None:
        raise MatchError(qk, f"{block}: cannot tell the head size (no Reshape with a static head dimension on "
                             "the Q path)")
    scale = s_scale * sq * sk
    ratio = scale * math.sqrt(d)
    q = lins[0][1]
    if abs(ratio - 1.0) > 1e-5:  # fold a non-standard scale into Q so that 1/sqrt(d) stays the contract
        q = LinearSpec(weight=(q.weight * np.float32(ratio)).astype(np.float32),
                       bias=(q.bias * np.float32(ratio)).astype(np.float32))
    else:
        ratio = 1.0
    return _Attn(x=lins[0][0], q=q, k=lins[1][1], v=lins[2][1], num_heads=H // d, scale_folded=ratio)


@dataclass
class _Emb:
    spec: EmbeddingSpec
    ids_input: str


def _embedding(G: _Graph, t: str) -> _Emb:
    """Match the embedding: ``[LayerNorm](sum of Gathers [* scale] [+ const])``."""
    ln = None
    m = _match_ln(G, t)
    if m is not None:
        t, ln = m
    leaves: list[tuple[str, Any]] = []

    def collect(v: str, parent: Any):
        n = G.prod(G.strip(v, {"Identity", "Dropout", "Cast"}))
        if n is not None and n.op_type == "Add" and G.full_const(G.strip(v)) is None:
            for i in n.input:
                collect(i, n)
        else:
            leaves.append((v, parent))

    collect(t, G.prod(t))
    word = pos = tt = None
    scale, offset, ids_input = 1.0, 0, None
    for leaf, parent in leaves:
        const = G.full_const(leaf)
        if const is not None:  # a constant added vector: token type 0 folded by the exporter
            c = const.reshape(-1, const.shape[-1]) if const.ndim else None
            if c is None or c.shape[0] != 1:
                raise MatchError(parent, f"embedding: adds a constant of shape {const.shape} (the exporter "
                                 "folded the positional lookup for a fixed sequence length, so the table is "
                                 "lost): export with a dynamic sequence axis (dynamic_shapes / dynamic_axes)")
            tt = c.astype(np.float32)
            continue
        s = G.strip(leaf)
        n = G.prod(s)
        leaf_scale = 1.0
        if n is not None and n.op_type in ("Mul", "Div"):
            c = [G.scalar(i) for i in n.input]
            k = 0 if c[0] is not None else 1 if c[1] is not None else None
            if k is None or (n.op_type == "Div" and k == 0):
                raise MatchError(n, "embedding: scaled by a non-constant")
            leaf_scale = c[k] if n.op_type == "Mul" else 1.0 / c[k]
            s = G.strip(n.input[1 - k])
            n = G.prod(s)
        if n is None or n.op_type != "Gather" or G.attr(n, "axis", 0) != 0:
            raise MatchError(n, "expected an embedding lookup (Gather of a constant table) or an encoder layer")
        table = G.full_const(n.input[0])
        if table is None or table.ndim != 2:
            raise MatchError(n, "embedding: Gather of a non-constant or non-2-D table")
        table = np.ascontiguousarray(table.astype(np.float32))
        idx = G.strip(n.input[1], LAYOUT_OPS | {"Cast"})
        name = idx.lower()
        if idx in G.inputs and not any(k in name for k in ("token_type", "segment", "position")):
            if word is not None:
                raise MatchError(n, "embedding: two lookups indexed by graph inputs")
            word, scale, ids_input = table, leaf_scale, idx
            continue
        if leaf_scale != 1.0:
            raise MatchError(n, "embedding: a scale on a non-word table")
        if idx in G.inputs and ("token_type" in name or "segment" in name):
            tt = table
            continue
        if idx in G.inputs:
            raise MatchError(n, f"embedding: position ids come from graph input {idx!r}; padless numbers "
                                "positions itself (0..n-1): export without a position_ids input")
        vals = G.const(idx)
        if vals is not None and vals.size and not np.isnan(vals.astype(np.float64)).any():
            flat = vals.reshape(-1).astype(np.int64)
            if np.all(flat == 0) and table.shape[0] <= 16:
                tt = table  # token type ids folded to zeros
                continue
            offset = int(flat[0])
            if flat.size > 1 and not np.all(np.diff(flat) == 1):
                raise MatchError(n, "embedding: constant position ids are not consecutive")
            pos = table
            continue
        start = _range_start(G, idx)
        if start is None:
            raise MatchError(G.prod(idx), "embedding: position ids are computed in a way padless does not "
                                          "follow (expected Range / Slice of arange / constants)")
        pos, offset = table, start
    if word is None:
        raise MatchError(G.prod(t), "embedding: no word-embedding Gather indexed by a graph input")
    return _Emb(EmbeddingSpec(word=word, position=pos, token_type=tt, ln=ln, position_offset=offset,
                              scale=scale), ids_input)


def _range_start(G: _Graph, t: str) -> Optional[int]:
    """First position id of ``Range(start, ...)`` or ``Slice(arange-constant, start, ...)``."""
    n = G.prod(t)
    if n is None:
        return None
    if n.op_type == "Range":
        s = G.scalar(n.input[0])
        return int(s) if s is not None else None
    if n.op_type == "Slice":
        data = G.full_const(n.input[0])
        starts = G.const(n.input[1])
        if data is None or starts is None or np.isnan(starts.astype(float)).any():
            return None
        flat = data.reshape(-1)
        if flat.size > 1 and not np.all(np.diff(flat) == 1):
            return None
        return int(flat[int(starts.reshape(-1)[0])])
    if n.op_type in LAYOUT_OPS | {"Cast", "Gather"}:
        return _range_start(G, n.input[0])
    return None


# ------------------------------------------------------------------------------------------ public API

def _parse(G: _Graph, out: str):
    """Walk back from graph output ``out``: returns (layers, final_ln, embedding, activation, heads, notes)."""
    final_ln = None
    layers: list[LayerSpec] = []
    acts, heads, folded = [], [], []
    t = out

    def ffn(add_t: str, block: str):
        r = _split_residual(G, add_t)
        res, down = r
        act, up = _activation(G, down.x, block)
        u_in = G.strip(up.x)
        pre = _match_ln(G, up.x)
        if u_in == G.strip(res):
            return res, up.spec, down.spec, act, None
        if pre is not None and G.strip(pre[0]) == G.strip(res):
            return res, up.spec, down.spec, act, pre[1]
        raise MatchError(up.node, f"{block}: the FFN input is neither the residual nor LayerNorm(residual)")

    def attn(add_t: str, block: str, H: int):
        res, o = _split_residual(G, add_t)
        a = _attention(G, o.x, H, block)
        if a.x == G.strip(res):
            return res, o.spec, a, None
        pre = _match_ln(G, a.x)
        if pre is not None and G.strip(pre[0]) == G.strip(res):
            return res, o.spec, a, pre[1]
        raise MatchError(o.node, f"{block}: the attention input is neither the residual nor LayerNorm(residual)")

    # final LayerNorm of a pre-norm encoder: LN whose input is a pre-norm FFN block
    m = _match_ln(G, t)
    if m is not None and _split_residual(G, m[0]) is not None:
        try:
            if ffn(m[0], "layer -1 (counted back from the output)")[4] is not None:
                final_ln, t = m[1], m[0]
        except MatchError:
            pass
    idx = 0
    while True:
        block = f"layer -{idx + 1} (counted back from the output)"
        m = _match_ln(G, t)
        if m is not None and _split_residual(G, m[0]) is not None:  # post-norm layer
            ln2 = m[1]
            h, up, down, act, pre = ffn(m[0], block)
            if pre is not None:
                raise MatchError(G.prod(t), f"{block}: LayerNorm after a pre-norm block that is not the last")
            m1 = _match_ln(G, h)
            if m1 is None or _split_residual(G, m1[0]) is None:
                raise MatchError(G.prod(h), f"{block}: expected LayerNorm(x + attention) before the FFN")
            H = down.out_features
            x, o, a, pre1 = attn(m1[0], block, H)
            if pre1 is not None:
                raise MatchError(G.prod(h), f"{block}: mixes pre-norm attention with post-norm FFN")
            layers.append(LayerSpec(q=a.q, k=a.k, v=a.v, o=o, ln_attn=m1[1], ffn_up=up, ffn_down=down,
                                    ln_ffn=ln2, norm_first=False))
        elif m is None and _split_residual(G, t) is not None:  # pre-norm layer
            h, up, down, act, ln2 = ffn(t, block)
            if ln2 is None:
                raise MatchError(G.prod(t), f"{block}: residual FFN block without a LayerNorm")
            H = down.out_features
            x, o, a, ln1 = attn(h, block, H)
            if ln1 is None:
                raise MatchError(G.prod(h), f"{block}: pre-norm FFN with a post-norm attention block")
            layers.append(LayerSpec(q=a.q, k=a.k, v=a.v, o=o, ln_attn=ln1, ffn_up=up, ffn_down=down,
                                    ln_ffn=ln2, norm_first=True))
        else:
            break
        acts.append(act)
        heads.append(a.num_heads)
        folded.append(a.scale_folded)
        t = x
        idx += 1
    emb = _embedding(G, t)
    layers.reverse()
    return layers, final_ln, emb, acts[::-1], heads[::-1], folded[::-1]


def load_onnx(path: str | os.PathLike, name: Optional[str] = None, *, pooling: str = "mean",
              normalize: bool = True, tokenizer_path: Optional[str] = None,
              verify: Optional[bool] = None) -> EncoderSpec:
    """Import a BERT-family (or ``nn.TransformerEncoder``) encoder from an ONNX file into an EncoderSpec.

    Args:
        path: ``.onnx`` file (external data ``*.onnx.data`` next to it is read too).
        name: spec name (default: the file stem).
        pooling, normalize: copied into the spec (sentence-transformers mean pooling + L2 by default).
        tokenizer_path: folder with ``tokenizer.json``; default: the ONNX file's folder if it has one.
        verify: run the graph in onnxruntime on two random sequences and check the spec's fp32 reference
            against it (1e-4 + 1e-4 relative); default: when onnxruntime is installed.

    Returns:
        a validated EncoderSpec; weights are float32 ``(out, in)`` copies of the initializers.

    Raises:
        UnknownModelError: unreadable file, or a graph that does not match (the message names the first
            node in the walk that did not match and why), or a failed verification.
        InputError: the ``onnx`` package is missing.
    """
    try:
        import onnx
    except ImportError as exc:
        raise InputError("reading ONNX needs the onnx package: pip install 'padless[onnx]'") from exc
    p = Path(path)
    if not p.is_file():
        raise UnknownModelError(f"{p}: no such ONNX file")
    try:
        model = onnx.load(str(p))
    except Exception as exc:
        raise UnknownModelError(f"{p}: onnx could not read it ({type(exc).__name__}: {exc})") from exc
    G = _Graph(model)
    outputs = [o.name for o in model.graph.output]
    first_err: Optional[MatchError] = None
    parsed = None
    for out in outputs:
        try:
            parsed = _parse(G, out)
            break
        except MatchError as exc:
            first_err = first_err or exc
    if parsed is None:
        assert first_err is not None
        raise UnknownModelError(f"{p}: unsupported graph: {_describe(first_err.node)} did not match: "
                                f"{first_err.reason}")
    layers, final_ln, emb, acts, heads, folded = parsed
    notes: dict = {}
    if len(set(heads)) > 1:
        raise UnknownModelError(f"{p}: layers have different head counts {heads}")
    names = {"gelu_tanh": "gelu"}
    if len({names.get(a, a) for a in acts}) > 1:
        raise UnknownModelError(f"{p}: layers use different activations {acts}")
    if "gelu_tanh" in acts:
        notes["activation_note"] = "tanh-approximate GELU imported as erf GELU"
    if any(f != 1.0 for f in folded):
        notes["attention_scale_folded_into_q"] = folded
    e = emb.spec
    H = e.word.shape[1]
    max_pos = (e.position.shape[0] - e.position_offset) if e.position is not None else DEFAULT_MAX_POSITIONS
    if tokenizer_path is None and (p.parent / "tokenizer.json").is_file():
        tokenizer_path = str(p.parent)
    spec = EncoderSpec(
        name=name or p.stem, hidden_size=H, num_heads=heads[0] if heads else 1,
        intermediate_size=layers[0].ffn_up.out_features if layers else 4 * H, num_layers=len(layers),
        max_positions=int(max_pos), vocab_size=int(e.word.shape[0]), embeddings=e, layers=layers,
        activation=names.get(acts[0], acts[0]) if acts else "gelu", pooling=pooling, normalize=normalize,
        tokenizer_path=tokenizer_path, final_ln=final_ln,
        source={"kind": "onnx", "path": str(p), "producer": f"{model.producer_name} {model.producer_version}",
                "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0),
                "ids_input": emb.ids_input, **notes})
    if not layers:
        raise UnknownModelError(f"{p}: no encoder layer found between the embedding and the output")
    try:
        spec.validate()
    except SpecError as exc:
        raise UnknownModelError(f"{p}: the imported encoder is inconsistent: {exc}") from exc
    if verify is None:
        try:
            import onnxruntime  # noqa: F401
            verify = True
        except ImportError:
            verify = False
    if verify:
        # tanh GELU read as erf GELU differs by up to 4.7e-4 per activation: check with a looser bound
        tol = 5e-3 if "activation_note" in notes else 1e-4
        verify_onnx_import(p, spec, atol=tol, rtol=tol)
    return spec


def verify_onnx_import(path: str | os.PathLike, spec: EncoderSpec, lengths=(3, 11), seed: int = 0,
                       atol: float = 1e-4, rtol: float = 1e-4) -> Optional[float]:
    """Run the ONNX graph in onnxruntime and compare with :func:`padless.reference.encode_fp32` of ``spec``.

    Inputs are fed by name: the word-id input gets random ids, ``*mask*`` ones, ``*token_type*`` zeros;
    ``(1, n)`` then ``(n, 1)`` layouts are tried (batch- or sequence-first exports). Graphs whose
    sequence length was frozen at export (the TorchScript exporter traces ``MultiheadAttention`` with a
    fixed length) are probed for a length that runs (1..64). Returns the max excess error (<= 0 when
    within tolerance), or None (with a warning) when the graph has inputs it cannot fill or runs on no
    length. Raises UnknownModelError when a graph runs but disagrees beyond ``atol + rtol * |reference|``.
    """
    import onnxruntime as ort

    from ..reference import encode_fp32

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ids_name = spec.source.get("ids_input")
    ins = sess.get_inputs()
    rng = np.random.default_rng(seed)

    def feeds(ids: np.ndarray):
        n = ids.size
        for layout in ((1, n), (n, 1)) if n > 1 else ((1, 1),):
            feed = {}
            for i in ins:
                nm = i.name.lower()
                if i.name == ids_name:
                    feed[i.name] = ids.reshape(layout)
                elif "mask" in nm:
                    feed[i.name] = np.ones(layout, np.float32 if "float" in i.type else np.int64)
                elif "token_type" in nm or "segment" in nm:
                    feed[i.name] = np.zeros(layout, np.int64)
                else:
                    return
            yield layout, feed

    def excess(n: int) -> Optional[float]:
        """Smallest excess error over the layouts that run; None if none runs."""
        ids = rng.integers(0, spec.vocab_size, n).astype(np.int64)
        ref = encode_fp32(spec, [ids])[0]
        best = None
        for layout, feed in feeds(ids):
            try:
                out = np.asarray(sess.run(None, feed)[0], np.float32)
            except Exception:  # a length or layout the graph's frozen shapes reject
                continue
            if out.size != ref.size:
                continue
            got = out.reshape(n, -1) if layout[0] == 1 else out.reshape(n, -1)
            err = float(np.max(np.abs(got - ref) - rtol * np.abs(ref)))
            best = err if best is None else min(best, err)
        return best

    if any(i.name != ids_name and not any(k in i.name.lower() for k in ("mask", "token_type", "segment"))
           for i in ins):
        warnings.warn(f"{path}: not verified with onnxruntime (graph inputs {[i.name for i in ins]})", stacklevel=2)
        return None
    results = [(n, excess(n)) for n in lengths]
    if all(e is None for _, e in results):
        for n in range(1, 65):
            e = excess(n)
            if e is not None:
                results = [(n, e)]
                break
    ran = [(n, e) for n, e in results if e is not None]
    if not ran:
        warnings.warn(f"{path}: onnxruntime could not run the graph on any length 1..64; not verified",
                      stacklevel=2)
        return None
    for n, e in ran:
        if e > atol:
            raise UnknownModelError(
                f"{path}: the imported spec does not reproduce onnxruntime's output (error exceeds {atol} + "
                f"{rtol}*|ref| by {e:.2e} on {n} tokens): the graph matched the encoder pattern but computes "
                "something else")
    return max(e for _, e in ran)
