"""Rewrite a dynamically quantized (int8) ONNX model into a float one.

Kokoro's int8 export quantizes weights and, at run time, activations:
``DynamicQuantizeLinear`` → ``MatMulInteger``/``ConvInteger`` → ``Cast`` →
``Mul(x_scale * w_scale)``, and ``DynamicQuantizeLSTM``. ONNX Runtime runs the
integer kernels slowly on many CPUs. This rewrite replaces each such group by
one float ``MatMul``/``Conv``/``LSTM`` whose weights are the dequantized int8
weights, ``(w_q - w_zero_point) * w_scale``: the same weights the int8 model
has, without re-quantizing activations at every layer. The result is about
three times the size on disk and much faster on CPUs.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

_LOGGER = logging.getLogger(__name__)


class _Graph:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.graph = model.graph
        self.inits = {init.name: init for init in self.graph.initializer}
        self.producer = {out: node for node in self.graph.node for out in node.output}
        self._float_names: dict[tuple[str, int], str] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def array(self, name: str) -> np.ndarray:
        return numpy_helper.to_array(self.inits[name])

    def only_consumer(self, name: str, op_type: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        if len(users) == 1 and users[0].op_type == op_type:
            return users[0]
        return None

    def float_weight(self, quantized: str, value: np.ndarray) -> str:
        """Add a float initializer for a dequantized weight (once, however many nodes share it)."""
        value = np.ascontiguousarray(value, dtype=np.float32)
        key = (quantized, hash(value.tobytes()))
        if key not in self._float_names:
            name = f"{quantized}_float{len(self._float_names)}"
            self.graph.initializer.append(numpy_helper.from_array(value, name))
            self._float_names[key] = name
        return self._float_names[key]


def _weight_scale(g: _Graph, scales_name: str) -> np.ndarray | None:
    """The weight scale inside ``x_scale * w_scale`` (the initializer operand of that Mul)."""
    node = g.producer.get(scales_name)
    if node is None or node.op_type != "Mul":
        return None
    constants = [name for name in node.input if name in g.inits]
    return g.array(constants[0]) if len(constants) == 1 else None


Rewrite = tuple[list[onnx.NodeProto], list[onnx.NodeProto]]  # new nodes, nodes they make obsolete


def _bias_of(g: _Graph, name: str) -> str | None:
    """The float bias behind ``Reshape(Cast(Floor(Div(bias, scale))))``, the int32 bias of a ConvInteger."""
    node = g.producer.get(name)
    for op_type in ("Reshape", "Cast", "Floor", "Div"):
        if node is None or node.op_type != op_type:
            return None
        if op_type == "Div":
            return node.input[0] if node.input[0] in g.inits else None
        node = g.producer.get(node.input[0])
    return None


def _rewrite_integer_op(g: _Graph, node: onnx.NodeProto) -> Rewrite | None:
    """Float replacement for ``MatMulInteger|ConvInteger [→ Add(int bias)] → Cast → Mul(scales)``."""
    x_q, w_q, _x_zp, w_zp = ([*list(node.input), "", "", "", ""])[:4]
    quantize = g.producer.get(x_q)
    if quantize is None or quantize.op_type != "DynamicQuantizeLinear" or w_q not in g.inits:
        return None
    obsolete: list[onnx.NodeProto] = []
    bias: str | None = None
    result = node.output[0]
    add = g.only_consumer(result, "Add") if node.op_type == "ConvInteger" else None
    if add is not None:
        bias = _bias_of(g, next(name for name in add.input if name != result))
        if bias is None:
            return None
        obsolete.append(add)
        result = add.output[0]
    cast = g.only_consumer(result, "Cast")
    mul = cast and g.only_consumer(cast.output[0], "Mul")
    if mul is None:
        return None
    obsolete += [cast, mul]
    scales = next(name for name in mul.input if name != cast.output[0])
    w_scale = _weight_scale(g, scales)
    if w_scale is None:
        return None
    weight = g.array(w_q).astype(np.float32)
    zero = g.array(w_zp).astype(np.float32) if w_zp in g.inits else np.float32(0)
    if node.op_type == "ConvInteger":  # weight [O, I, k...]: zero point and scale per output channel
        shape = (-1,) + (1,) * (weight.ndim - 1)
        zero = np.reshape(zero, shape) if np.ndim(zero) else zero
        w_scale = np.reshape(w_scale, shape) if np.ndim(w_scale) else w_scale
    # MatMulInteger weight [K, N]: zero point and scale per column, which broadcasting does
    name = g.float_weight(w_q, (weight - zero) * w_scale)
    inputs = [quantize.input[0], name] + ([bias] if bias else [])
    new = helper.make_node(node.op_type.removesuffix("Integer"), inputs, [mul.output[0]], name=node.name + "_float")
    if node.op_type == "ConvInteger":
        new.attribute.extend(node.attribute)
    return [new], obsolete


def _rewrite_lstm(g: _Graph, node: onnx.NodeProto) -> Rewrite | None:
    """DynamicQuantizeLSTM → LSTM with dequantized, transposed W and R."""
    inputs = list(node.input) + [""] * (12 - len(node.input))
    x, w_q, r_q, bias, seq_lens, init_h, init_c, peep, w_s, w_zp, r_s, r_zp = inputs[:12]
    if not all(name in g.inits for name in (w_q, r_q, w_s, w_zp, r_s, r_zp)):
        return None

    def real(q: str, scale: str, zero: str) -> np.ndarray:
        # [num_directions, input, 4*hidden] with scale/zero per direction (and per column)
        values = g.array(q).astype(np.float32)
        s = g.array(scale).astype(np.float32)
        z = g.array(zero).astype(np.float32)
        s = s.reshape(s.shape[0], 1, -1) if s.ndim else s
        z = z.reshape(z.shape[0], 1, -1) if z.ndim else z
        return np.transpose((values - z) * s, (0, 2, 1))  # LSTM wants [num_directions, 4*hidden, input]

    w_name = g.float_weight(w_q, real(w_q, w_s, w_zp))
    r_name = g.float_weight(r_q, real(r_q, r_s, r_zp))
    lstm = helper.make_node(
        "LSTM",
        [x, w_name, r_name, bias, seq_lens, init_h, init_c, peep],
        list(node.output),
        name=node.name + "_float",
    )
    lstm.attribute.extend(node.attribute)
    return [lstm], []


def _remove_dead(graph: onnx.GraphProto) -> None:
    needed = {out.name for out in graph.output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            keep.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    live = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(live)


def dequantize(source: Path, target: Path) -> Counter:
    """Write a float version of ``source`` to ``target``; return how many ops of each kind were rewritten."""
    model = onnx.load(str(source))
    g = _Graph(model)
    rewritten: Counter = Counter()
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[str] = set()
    for index, node in enumerate(g.graph.node):
        if node.op_type in ("MatMulInteger", "ConvInteger"):
            new = _rewrite_integer_op(g, node)
        elif node.op_type == "DynamicQuantizeLSTM":
            new = _rewrite_lstm(g, node)
        else:
            continue
        if new is not None:
            replaced[index] = new[0]
            dropped.update(old.output[0] for old in new[1])
            rewritten[node.op_type] += 1
    nodes = list(g.graph.node)
    del g.graph.node[:]
    for index, node in enumerate(nodes):
        if node.output[0] not in dropped:
            g.graph.node.extend(replaced.get(index, [node]))
    _remove_dead(g.graph)
    # Each new node sits where its integer op was and produces what the dropped Mul did
    # (which came later), so the graph stays topologically sorted.
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    onnx.save(model, str(partial))
    partial.replace(target)
    _LOGGER.info("Rewrote %s to float: %s", source.name, dict(rewritten))
    return rewritten
