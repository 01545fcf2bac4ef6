"""Graph rewrites that make Kokoro faster on CPUs, applied once and cached in the data folder.

:func:`optimize` chains them: int8 → float weights (when the model is int8),
1-D convolutions → 2-D ones, and a ``max_durations`` input that caps how long
silent tokens last. :func:`quantize_vocoder` then makes a second candidate
with static int8 convolutions in the vocoder's residual blocks.

**Float weights.**
Kokoro's int8 export quantizes weights and, at run time, activations:
``DynamicQuantizeLinear`` → ``MatMulInteger``/``ConvInteger`` → ``Cast`` →
``Mul(x_scale * w_scale)``, and ``DynamicQuantizeLSTM``. ONNX Runtime runs the
integer kernels slowly on many CPUs. This rewrite replaces each such group by
one float ``MatMul``/``Conv``/``LSTM`` whose weights are the dequantized int8
weights, ``(w_q - w_zero_point) * w_scale``: the same weights the int8 model
has, without re-quantizing activations at every layer. The result is about
three times the size on disk.

**2-D convolutions.** Kokoro's vocoder is made of 1-D convolutions, for which
ONNX Runtime has only its generic kernel; written as 2-D convolutions of height
one they run on its blocked (NCHWc) kernels, about twice as fast here.

**Silence caps.** Kokoro gives the start-of-text token and the final
punctuation long durations (a third of a second each), and the vocoder then
spends up to half of a short phrase's time synthesizing silence that the
server trims away anyway. The rewritten model takes a ``max_durations`` input
(frames per token, 25 ms each) and clips the predicted durations to it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    mul = g.only_consumer(cast.output[0], "Mul") if cast is not None else None
    if cast is None or mul is None:
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


def dequantize(model: onnx.ModelProto) -> Counter:
    """Replace integer ops by float ones in place; return how many of each kind were rewritten."""
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
        # Each new node sits where its integer op was and produces what the dropped Mul did
        # (which came later), so the graph stays topologically sorted.
        if node.output[0] not in dropped:
            g.graph.node.extend(replaced.get(index, [node]))
    _remove_dead(g.graph)
    return rewritten


def conv1d_to_conv2d(model: onnx.ModelProto) -> int:
    """Rewrite each 1-D Conv with a constant weight as Unsqueeze → 2-D Conv → Squeeze; return how many."""
    g = _Graph(model)
    axes = "chatty_axis_2"
    g.graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), axes))
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in g.graph.node:
        weight = g.inits.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if weight is None or len(weight.dims) != 3:
            nodes.append(node)
            continue
        name_2d = node.input[1] + "_2d"
        if name_2d not in g.inits:
            tensor = numpy_helper.from_array(g.array(node.input[1])[:, :, None, :], name_2d)
            g.graph.initializer.append(tensor)
            g.inits[name_2d] = tensor
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        new_attrs: dict[str, Any] = {"kernel_shape": [1, int(weight.dims[2])]}
        if "pads" in attrs:
            new_attrs["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
        for key in ("strides", "dilations"):
            if key in attrs:
                new_attrs[key] = [1, attrs[key][0]]
        for key in ("group", "auto_pad"):
            if key in attrs:
                new_attrs[key] = attrs[key]
        x_4d, y_4d = node.output[0] + "_in_2d", node.output[0] + "_out_2d"
        nodes += [
            helper.make_node("Unsqueeze", [node.input[0], axes], [x_4d]),
            helper.make_node("Conv", [x_4d, name_2d, *node.input[2:]], [y_4d], name=node.name + "_2d", **new_attrs),
            helper.make_node("Squeeze", [y_4d, axes], [node.output[0]]),
        ]
        count += 1
    del g.graph.node[:]
    g.graph.node.extend(nodes)
    _remove_dead(g.graph)
    return count


def square_to_mul(model: onnx.ModelProto) -> int:
    """Rewrite ``Pow(x, 2)`` (the Snake activations' sin²) as ``Mul(x, x)``: same result, cheaper kernel."""
    g = _Graph(model)
    count = 0
    for node in g.graph.node:
        if node.op_type != "Pow" or node.input[1] not in g.inits:
            continue
        exponent = g.array(node.input[1])
        if exponent.size == 1 and float(exponent.reshape(-1)[0]) == 2.0:
            node.op_type = "Mul"
            node.input[1] = node.input[0]
            count += 1
    _remove_dead(g.graph)
    return count


DURATION_CAPS = "max_durations"


def add_duration_caps(model: onnx.ModelProto) -> bool:
    """Add the ``max_durations`` input [1, tokens] and clip the predicted durations to it.

    The durations are the output of ``Clip(Round(...))`` in Kokoro's encoder. Returns
    False (model unchanged) when the graph has no such node or already has the input.
    """
    graph = model.graph
    if any(i.name == DURATION_CAPS for i in graph.input):
        return False
    producer = {out: node for node in graph.node for out in node.output}
    clip = next(
        (
            node
            for node in graph.node
            if node.op_type == "Clip" and getattr(producer.get(node.input[0]), "op_type", "") == "Round"
        ),
        None,
    )
    if clip is None:
        return False
    durations = clip.output[0]
    capped = durations + "_capped"
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == durations:
                node.input[i] = capped
    position = list(graph.node).index(clip) + 1
    graph.node.insert(position, helper.make_node("Min", [durations, DURATION_CAPS], [capped], name="chatty_caps"))
    graph.input.append(helper.make_tensor_value_info(DURATION_CAPS, onnx.TensorProto.FLOAT, [1, "tokens"]))
    return True


def optimize(source: Path, target: Path) -> dict[str, object]:
    """Write the fastest CPU form of a Kokoro model to ``target``; return what was changed."""
    model = onnx.load(str(source))
    summary: dict[str, object] = {"dequantized": dict(dequantize(model))}
    summary["conv2d"] = conv1d_to_conv2d(model)
    summary["square_to_mul"] = square_to_mul(model)
    summary["duration_caps"] = add_duration_caps(model)
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    onnx.save(model, str(partial))
    partial.replace(target)
    _LOGGER.info("Optimized %s: %s", source.name, summary)
    return summary


def _quantizer_advice(record: logging.LogRecord) -> bool:
    """False for the root-logger lines ONNX Runtime's quantizer writes (advice, not problems)."""
    return "onnxruntime" not in record.pathname or "quantization" not in record.pathname


def quantize_vocoder(
    model: Path, target: Path, feeds: list[dict[str, np.ndarray]], on_feed: Callable[[int], None] | None = None
) -> int:
    """Static int8 (QDQ, per-channel weights) for the convolutions of the vocoder's residual blocks
    (those of the main path and of the noise path).

    They are most of the compute, and, calibrated on real inputs (``feeds``), change the
    sound about as much as Kokoro's own int8 export does; quantizing every convolution
    does not (checked by the caller). Returns how many convolutions were quantized.
    ``on_feed(n)`` is called as calibration starts on the n-th input.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(model), load_external_data=False).graph
    blocks = ("/generator/resblocks", "/generator/noise_res")
    nodes = [node.name for node in graph.node if node.op_type == "Conv" and any(b in node.name for b in blocks)]
    if not nodes:
        return 0

    class Feeds(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)
            self._count = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            feed = next(self._feeds, None)
            if feed is not None:
                self._count += 1
                if on_feed is not None:
                    on_feed(self._count)
            return feed

    partial = target.with_suffix(".partial")
    root = logging.getLogger()
    root.addFilter(_quantizer_advice)  # its advice to pre-process the model goes to the root logger
    try:
        quantize_static(
            str(model),
            str(partial),
            Feeds(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=nodes,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.removeFilter(_quantizer_advice)
    partial.replace(target)
    return len(nodes)
