"""Keras models from specs: whole networks (for training and whole-model latency) and single-op
microbenchmarks.  Imports TensorFlow/Keras, so only commands that build models import it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers as kl

from latprof.arch import SKIP_NONE, Architecture
from latprof.errors import LatprofError
from latprof.network import HEAD, STEM, LayerSpec, Network
from latprof.ops import OpSpec

_ACTIVATIONS = {"NONE": None, "RELU": "relu", "RELU6": "relu6"}


def _activation(x, hswish: bool):
    return kl.Activation("hard_swish")(x) if hswish else kl.ReLU()(x)


def _conv_bn(x, filters: int, kernel: int, stride: int, relu: bool, depthwise: bool = False, hswish: bool = False):
    """Conv, batch norm and, with ``relu``, the activation (h-swish instead of ReLU with ``hswish``)."""
    if depthwise:
        x = kl.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False)(x)
    else:
        x = kl.Conv2D(filters, kernel, stride, padding="same", use_bias=False)(x)
    x = kl.BatchNormalization(momentum=0.99, epsilon=1e-3)(x)
    return _activation(x, hswish) if relu else x


def _head(x, layer: LayerSpec):
    """MnasNet's head, or with ``mix_ch`` Keras' MobileNetV3 head (pool, 1x1 conv with a bias and
    no batch norm, dropout, classifier as a 1x1 conv, flatten), so both convert to their ops."""
    x = _conv_bn(x, layer.out_ch, 1, 1, relu=True, hswish=layer.hswish)
    if not layer.mix_ch:
        x = kl.GlobalAveragePooling2D()(x)
        x = kl.Dropout(0.2)(x)
        return kl.Dense(layer.classes, activation="softmax")(x)
    x = kl.GlobalAveragePooling2D(keepdims=True)(x)
    x = _activation(kl.Conv2D(layer.mix_ch, 1)(x), layer.hswish)
    x = kl.Dropout(0.2)(x)
    x = kl.Flatten()(kl.Conv2D(layer.classes, 1)(x))
    return kl.Activation("softmax")(x)


def _squeeze_excite(x, layer: LayerSpec):
    """MnasNet's sigmoid gate, or MobileNetV3's hard sigmoid written as Keras' MobileNetV3 writes
    it, relu6(x + 3) / 6, so that it converts to the same ops as the zoo's model."""
    s = kl.GlobalAveragePooling2D(keepdims=True)(x)
    s = kl.Conv2D(layer.se_ch, 1, activation="relu")(s)
    if layer.hard_se:
        s = kl.ReLU(6.0)(kl.Conv2D(layer.mid_ch, 1)(s) + 3.0) * (1.0 / 6.0)
    else:
        s = kl.Conv2D(layer.mid_ch, 1, activation="sigmoid")(s)
    return kl.Multiply()([x, s])


def _layer(x, layer: LayerSpec):
    """One layer, following the MnasNet reference: conv-BN-ReLU pieces, SE, linear projection."""
    if layer.kind == STEM:
        return _conv_bn(x, layer.out_ch, layer.kernel, layer.stride, relu=True, hswish=layer.hswish)
    if layer.kind == HEAD:
        return _head(x, layer)
    inputs = x
    if layer.regular_conv:
        x = _conv_bn(x, layer.mid_ch, layer.kernel, layer.stride, relu=True, hswish=layer.hswish)
    else:
        if layer.expand != 1:
            x = _conv_bn(x, layer.mid_ch, 1, 1, relu=True, hswish=layer.hswish)
        x = _conv_bn(x, layer.mid_ch, layer.kernel, layer.stride, relu=True, depthwise=True, hswish=layer.hswish)
    if layer.se_ch:
        x = _squeeze_excite(x, layer)
    if not layer.regular_conv:
        x = _conv_bn(x, layer.out_ch, 1, 1, relu=False)
    if layer.shortcut == SKIP_NONE:
        return x
    if layer.shortcut == "pool":
        window = layer.stride if layer.stride > 1 else 3
        inputs = kl.AveragePooling2D(window, layer.stride, padding="same")(inputs)
    return kl.Add()([x, inputs])


def build_model(arch: Architecture, resolution: int | None = None, batch_size: int | None = 1) -> keras.Model:
    """The Keras model of an architecture at ``resolution`` (default: the arch's own).

    Batch 1 is what a phone runs and what converts to the LUT's shapes; training needs
    ``batch_size=None`` (any batch)."""
    size = resolution or arch.resolution
    inputs = keras.Input((size, size, 3), batch_size=batch_size)
    x = inputs
    for layer in Network(arch).layers:
        x = _layer(x, layer)
    return keras.Model(inputs, x, name=(arch.name or "latprof_net").replace("-", "_"))


def _shape_arithmetic(spec: OpSpec) -> bool:
    """Ops on a few integers that compute a tensor shape at run time, as a model converted with a
    free batch dimension (Keras' default) does before each Reshape."""
    tiny = len(spec.output) <= 1 and sum(spec.output) <= 8
    return spec.op == "SHAPE" or (spec.op in ("STRIDED_SLICE", "PACK") and tiny) or \
        (spec.op == "RESHAPE" and len(spec.inputs) == 2 and len(spec.inputs[1]) == 1)


def build_op_model(spec: OpSpec) -> keras.Model:
    """A model that converts to exactly one TFLite op: ``spec``.  Raises for kinds it cannot make."""
    if _shape_arithmetic(spec):
        raise LatprofError(f"no microbenchmark generator for {spec.key} (shape arithmetic of a free batch dimension: "
                           "convert the model at batch 1, e.g. keras.Input(shape, batch_size=1), and it is gone)")
    if spec.unsupported:
        raise LatprofError(f"no microbenchmark generator for {spec.key} ({spec.unsupported})")
    if spec.const_inputs and (spec.op not in ("ADD", "MUL", "SUB") or len(spec.activation_inputs) != 1):
        raise LatprofError(f"no microbenchmark generator for {spec.key} (constant operand)")
    inputs = [keras.Input(shape, batch_size=1) for shape in spec.activation_inputs]
    x = inputs[0]
    act = _ACTIVATIONS.get(spec.activation, "unsupported")
    padding = spec.padding.lower() or "valid"
    op = spec.op
    if act == "unsupported":
        raise LatprofError(f"no microbenchmark generator for {spec.key} (activation {spec.activation})")
    if op == "CONV_2D":
        y = kl.Conv2D(spec.output[-1], spec.kernel, spec.stride, padding=padding, activation=act)(x)
    elif op == "DEPTHWISE_CONV_2D":
        y = kl.DepthwiseConv2D(spec.kernel, spec.stride, padding=padding,
                               depth_multiplier=spec.output[-1] // spec.inputs[0][-1], activation=act)(x)
    elif op == "FULLY_CONNECTED":
        y = kl.Dense(spec.output[-1], activation=act)(x)
    elif op == "MEAN":
        y = kl.GlobalAveragePooling2D(keepdims=len(spec.output) == 3)(x)
    elif op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        pool = kl.AveragePooling2D if op == "AVERAGE_POOL_2D" else kl.MaxPooling2D
        y = pool(spec.kernel, spec.stride, padding=padding)(x)
    elif spec.const_inputs:  # x (op) constant, as hard-swish and rescaling layers write it
        constant = np.full(spec.inputs[spec.const_inputs[0]], 0.5, dtype="float32")
        y = {"ADD": keras.ops.add, "MUL": keras.ops.multiply, "SUB": keras.ops.subtract}[op](x, constant)
        y = kl.Activation(act)(y) if act else y
    elif op in ("ADD", "MUL") and len(inputs) == 2:
        y = (kl.Add() if op == "ADD" else kl.Multiply())(inputs)
        y = kl.Activation(act)(y) if act else y
    elif op == "LOGISTIC":
        y = kl.Activation("sigmoid")(x)
    elif op == "SOFTMAX":
        y = kl.Softmax()(x)
    elif op == "RELU":
        y = kl.ReLU()(x)
    elif op == "RELU6":
        y = kl.ReLU(max_value=6.0)(x)
    elif op == "HARD_SWISH":
        y = kl.Activation("hard_swish")(x)
    elif op == "PAD" and len(spec.output) == 3:
        (dh, dw) = (spec.output[0] - spec.inputs[0][0], spec.output[1] - spec.inputs[0][1])
        y = kl.ZeroPadding2D(((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)))(x)
    elif op == "RESHAPE":
        y = kl.Reshape(spec.output)(x)
    elif op == "CONCATENATION":
        y = kl.Concatenate()(inputs)
    else:
        raise LatprofError(f"no microbenchmark generator for op {op} ({spec.key})")
    return keras.Model(inputs, y)
