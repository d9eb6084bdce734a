"""Network unrolling: published sizes, agreement with the Keras builder, shortcut rules, and the
search space's enumeration of every op it can produce."""

from __future__ import annotations

from collections import Counter

import pytest

from latprof.arch import SKIP_IDENTITY, SKIP_NONE, SKIP_POOL, Architecture, Block
from latprof.network import BLOCK, HEAD, STEM, Network, block_layers
from latprof.space import SearchSpace


def network(name: str) -> Network:
    return Network(Architecture.from_string(name))


def test_mnasnet_b1_params_match_torchvision_exactly():
    assert network("mnasnet-b1").params == 4_383_312


def test_mnasnet_a1_size():
    net = network("mnasnet-a1")
    assert net.params == pytest.approx(3.9e6, rel=0.01)
    assert net.macs == pytest.approx(312e6, rel=0.01)


def test_mnasnet_small_size():
    net = network("mnasnet-small")
    assert net.params == pytest.approx(2.0e6, rel=0.02)
    assert net.macs == pytest.approx(70e6, rel=0.05)


def test_mobilenetv2_size():
    net = network("mobilenetv2")
    assert net.params == 3_504_872
    assert net.macs == pytest.approx(300e6, rel=0.01)


def test_width_and_resolution_scale_the_counts():
    full, half = network("mobilenetv2"), network("mobilenetv2:res224_w0.5")
    assert half.params < full.params and half.macs < full.macs
    # Every feature map divides evenly at 256 and 128: all but the classifier's MACs scale by 4.
    big, small = network("mobilenetv2:res256"), network("mobilenetv2:res128")
    assert big.params == small.params == full.params
    classifier = 1280 * 1000
    assert big.macs - classifier == 4 * (small.macs - classifier)


def test_layer_shapes_of_mnasnet_a1():
    net = network("mnasnet-a1")
    layers = net.layers
    assert layers[0].kind == STEM and layers[0].size == 224 and layers[0].out_size == 112
    assert layers[-1].kind == HEAD and layers[-1].size == 7 and layers[-1].in_ch == 320
    blocks = [layer for layer in layers if layer.kind == BLOCK]
    assert len(blocks) == 1 + 2 + 3 + 4 + 2 + 3 + 1
    ops = Counter(op.op for op in net.ops)
    se_layers = sum(1 for layer in blocks if layer.se_ch)
    assert se_layers == 3 + 2 + 3
    assert ops["LOGISTIC"] == ops["MUL"] == se_layers
    assert ops["MEAN"] == se_layers + 1
    assert ops["FULLY_CONNECTED"] == ops["SOFTMAX"] == 1
    assert ops["ADD"] == sum(1 for layer in blocks if layer.shortcut != SKIP_NONE)


@pytest.fixture(scope="module")
def keras_models():
    from latprof.builder import build_model

    return {name: build_model(Architecture.from_string(name)) for name in ("mnasnet-a1", "mnasnet-b1")}


@pytest.mark.parametrize("name", ["mnasnet-a1", "mnasnet-b1"])
def test_keras_model_parameter_count_matches(keras_models, name):
    model = keras_models[name]
    net = network(name)
    trainable = sum(w.numpy().size for w in model.trainable_weights)
    assert trainable == net.params
    # The batch norms' moving mean and variance are the only non-trainable weights.
    frozen = sum(w.numpy().size for w in model.non_trainable_weights)
    assert frozen == 2 * sum(layer.batchnorm_channels for layer in net.layers)
    assert tuple(model.input_shape) == (1, 224, 224, 3)
    assert tuple(model.output_shape) == (1, 1000)


def test_keras_model_of_search_space_choices_matches():
    from latprof.builder import build_model

    arch = Architecture.from_string(
        "res96_w0.75:r1_k3_s11_e1_i32_o24_conv_poolskip,r2_k5_s22_e3_i24_o24_poolskip_se0.25,"
        "r2_k3_s11_e1_i24_o40_conv_se0.25,r1_k5_s22_e6_i40_o40_noskip")
    model = build_model(arch)
    assert sum(w.numpy().size for w in model.trainable_weights) == Network(arch).params
    assert tuple(model.output_shape) == (1, 1000)


def _shortcuts(block: Block, channels: int, out: int) -> list[str]:
    return [layer.shortcut for layer in block_layers(block, 32, channels, out)]


def test_identity_shortcut_needs_stride_one_and_equal_widths():
    assert _shortcuts(Block(2, 3, 1, 6, 16, 16), 16, 16) == [SKIP_IDENTITY, SKIP_IDENTITY]
    # stride 2: only the later layers keep their shortcut
    assert _shortcuts(Block(3, 3, 2, 6, 16, 16), 16, 16) == [SKIP_NONE, SKIP_IDENTITY, SKIP_IDENTITY]
    # width changes in the first layer
    assert _shortcuts(Block(2, 3, 1, 6, 16, 24), 16, 24) == [SKIP_NONE, SKIP_IDENTITY]
    assert _shortcuts(Block(2, 3, 2, 6, 16, 24), 16, 24) == [SKIP_NONE, SKIP_IDENTITY]
    # noskip means none anywhere
    assert _shortcuts(Block(3, 3, 1, 6, 16, 16, skip=SKIP_NONE), 16, 16) == [SKIP_NONE] * 3


def test_pool_shortcut_works_across_stride_but_not_across_widths():
    assert _shortcuts(Block(2, 3, 2, 6, 16, 16, skip=SKIP_POOL), 16, 16) == [SKIP_POOL, SKIP_POOL]
    assert _shortcuts(Block(2, 3, 1, 6, 16, 24, skip=SKIP_POOL), 16, 24) == [SKIP_NONE, SKIP_POOL]
    first, second = block_layers(Block(2, 3, 2, 6, 16, 16, skip=SKIP_POOL), 32, 16, 16)
    pool = [op for op in first.ops() if op.op == "AVERAGE_POOL_2D"]
    assert [(op.inputs, op.output, op.kernel, op.stride) for op in pool] == [(((32, 32, 16),), (16, 16, 16), 2, 2)]
    pool = [op for op in second.ops() if op.op == "AVERAGE_POOL_2D"]
    assert [(op.inputs, op.output, op.kernel, op.stride) for op in pool] == [(((16, 16, 16),), (16, 16, 16), 3, 1)]
    assert first.ops()[-1].op == second.ops()[-1].op == "ADD"


def test_shortcut_rule_holds_in_sampled_networks():
    for arch in SearchSpace().sample_many(30, seed=3):
        for layer in Network(arch).layers:
            if layer.shortcut == SKIP_IDENTITY:
                assert layer.stride == 1 and layer.in_ch == layer.out_ch
            if layer.shortcut == SKIP_POOL:
                assert layer.in_ch == layer.out_ch
            has_add = any(op.op == "ADD" for op in layer.ops())
            assert has_add == (layer.shortcut != SKIP_NONE)


def test_regular_conv_block_ops():
    (layer,) = block_layers(Block(1, 5, 2, 1, 16, 32, regular_conv=True), 32, 16, 32)
    ops = layer.ops()
    assert [op.op for op in ops] == ["CONV_2D"]
    assert (ops[0].kernel, ops[0].stride, ops[0].activation, ops[0].output) == (5, 2, "RELU", (16, 16, 32))


def test_unique_ops_cover_sampled_architectures():
    space = SearchSpace()
    every = space.unique_ops()
    sampled = space.sample_many(30, seed=11)
    for arch in sampled:
        missing = set(Network(arch).ops) - every
        assert not missing, f"{arch.to_string()}: {sorted(op.key for op in missing)[:3]}"
    # the ops of the samples are a small part of the space's, and every kind is represented
    used = {op for arch in sampled for op in Network(arch).ops}
    assert len(used) < len(every)
    assert {op.op for op in every} == {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "LOGISTIC", "MUL", "ADD",
                                       "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"}
