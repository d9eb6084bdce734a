"""MobileNetV3 in the block grammar: h-swish, hard-sigmoid squeeze-excite, fractional expansion and
MobileNetV3's head, keyed like the ops of the zoo's keras.applications models, built and converted
to exactly those ops, and the two published networks as reference names."""

from __future__ import annotations

from collections import Counter

import pytest

from latprof.arch import REFERENCES, Architecture, Block
from latprof.errors import LatprofError
from latprof.network import Network, expanded_width


@pytest.mark.parametrize("text", [
    "r1_k3_s11_e6_i16_o16_hs",
    "r1_k5_s22_e4.5_i16_o24_se0.25_hsig",
    "r2_k5_s11_e6_i40_o40_se0.25_hs_hsig",
    "r1_k3_s11_e1_i24_o32_se0.25_conv_hs_hsig",
])
def test_new_tokens_round_trip(text):
    block = Block.from_string(text)
    assert block.to_string() == text and Block.from_string(block.to_string()) == block


def test_new_tokens_decode_and_old_strings_keep_their_meaning():
    block = Block.from_string("r1_k3_s11_e2.5_i80_o80_se0.25_hsig_hs")
    assert (block.expand, block.hswish, block.hard_se) == (2.5, True, True)
    old = Block.from_string("r2_k5_s22_e6_i16_o24_se0.25")
    assert (old.hswish, old.hard_se, type(old.expand)) == (False, False, int)
    arch = Architecture.from_string("res160_mix1024_hs:r1_k3_s11_e1_i16_o16")
    assert (arch.mix, arch.hswish) == (1024, True)
    assert arch.to_string() == "res160_w1_stem32_head1280_cls1000_mix1024_hs:r1_k3_s11_e1_i16_o16"
    assert Architecture.from_string(arch.to_string()) == arch
    assert ":" in REFERENCES["mobilenetv2"].to_string() and "mix" not in REFERENCES["mobilenetv2"].to_string()


@pytest.mark.parametrize("text, hint", [
    ("r1_k3_s11_e6_i16_o16_hsig", "needs an se ratio"),
    ("r1_k3_s11_e6_i16_o16_hs_hs", "repeated"),
    ("r1_k3_s11_e0.5_i16_o16", "expand must be >= 1"),
])
def test_bad_new_tokens_are_explained(text, hint):
    with pytest.raises(LatprofError, match=hint):
        Block.from_string(text)


def test_fractional_expansion_rounds_like_keras():
    # Keras' MobileNetV3Small: 72/16, 88/24; Large: 2.5 and 2.3 of 80.
    assert [expanded_width(c, e) for c, e in ((16, 4.5), (24, 3.6667), (80, 2.5), (80, 2.3), (16, 6))] == \
        [72, 88, 200, 184, 96]


def test_op_keys_of_mobilenetv3_layers():
    layers = Network(REFERENCES["mobilenetv3-small"]).layers
    assert [op.key for op in layers[0].ops()] == ["CONV_2D|in=224x224x3|out=112x112x16|k=3|s=2|pad=SAME",
                                                  "HARD_SWISH|in=112x112x16|out=112x112x16"]
    # relu block with MobileNetV3's squeeze-excite: squeeze 16 / 4 -> 8, hard sigmoid = RELU6 conv, MUL by 1/6
    assert [op.key for op in layers[1].ops()] == [
        "DEPTHWISE_CONV_2D|in=112x112x16|out=56x56x16|k=3|s=2|pad=SAME|act=RELU",
        "MEAN|in=56x56x16|out=1x1x16",
        "CONV_2D|in=1x1x16|out=1x1x8|k=1|s=1|pad=VALID|act=RELU",
        "CONV_2D|in=1x1x8|out=1x1x16|k=1|s=1|pad=VALID|act=RELU6",
        "MUL|in=1x1x16,cscalar|out=1x1x16",
        "MUL|in=56x56x16,1x1x16|out=56x56x16",
        "CONV_2D|in=56x56x16|out=56x56x16|k=1|s=1|pad=VALID"]
    assert [op.op for op in layers[-1].ops()] == ["CONV_2D", "HARD_SWISH", "MEAN", "CONV_2D", "HARD_SWISH", "CONV_2D",
                                                  "RESHAPE", "SOFTMAX"]


@pytest.mark.parametrize("name, params, macs_m", [("mobilenetv3-small", 2_542_856, 56.5),
                                                   ("mobilenetv3-large", 5_483_032, 216.6)])
def test_published_sizes(name, params, macs_m):
    """Keras' trainable parameter counts; the paper publishes 2.5M / 56M MAdds and 5.4M / 219M."""
    net = Network(Architecture.from_string(name))
    assert net.params == params
    assert net.macs / 1e6 == pytest.approx(macs_m, abs=0.1)
    counts = Counter(op.op for op in net.ops)
    assert counts["HARD_SWISH"] > 0 and counts["LOGISTIC"] == 0


@pytest.fixture(scope="module")
def converted(model_cache):
    """Keras' MobileNetV3 1.0 at 96x96 from the zoo, and latprof's reference at 96 built and converted."""
    import keras.src.utils.file_utils as file_utils

    from latprof.convert import ensure_architectures
    from latprof.tflite_file import decompose
    from latprof.zoo import ZooModel, ensure_zoo

    archs = [Architecture.from_string(f"{name}:res96") for name in ("mobilenetv3-small", "mobilenetv3-large")]
    zoo = [ZooModel.from_name(f"mobilenet_v3_{size}-1.0-96") for size in ("small", "large")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(file_utils, "get_file", lambda *a, **k: pytest.fail("keras.applications tried to download"))
        zoo_paths = ensure_zoo(zoo, "float32", model_cache, workers=1)
    ours = ensure_architectures(archs, "float32", model_cache, workers=1)
    return [(arch, decompose(ours[arch.to_string()]).ops, decompose(zoo_paths[model]).ops, zoo_paths[model])
            for arch, model in zip(archs, zoo)]


def test_built_model_converts_to_the_network_ops_and_the_zoo_ops(converted):
    for arch, ours, zoo, _ in converted:
        assert [op.key for op in ours] == [op.key for op in Network(arch).ops]
        # the zoo's model starts with its input rescaling (x * 1/127.5 - 1), which latprof leaves out
        assert [op.op for op in zoo[:2]] == ["MUL", "ADD"] and list(zoo[2:]) == list(ours)


def test_reference_is_predicted_from_the_profiled_zoo_model(converted, host_device, model_cache, tmp_path):
    """Profile the zoo's MobileNetV3-Small (its ops timed inside it): every op of the reference
    name is then in the LUT, and it costs the zoo model less its input rescaling."""
    from latprof.lut import build_lut
    from latprof.predict import predict
    from latprof.profiling import profile

    arch, _, zoo, path = converted[0]
    profile(host_device, tmp_path / "run", model_cache, networks={"zoo": path}, record_state=False)
    lut = build_lut([tmp_path / "run"])
    ours, theirs = predict(arch.to_string(), lut), predict(str(path), lut)
    assert ours.missing == [] and ours.predicted_ops == 0 and ours.ops == len(zoo) - 2
    rescaling_us = sum(lut.op_latency_us(op) for op in zoo[:2])
    assert ours.known_ms == pytest.approx(theirs.known_ms - rescaling_us / 1000, abs=1e-9)


def test_keras_model_has_the_network_params():
    from latprof.builder import build_model

    arch = Architecture.from_string("res64_mix512_hs:r1_k3_s22_e1_i16_o16_se0.25_hsig,r1_k5_s11_e2.5_i16_o24_hs,"
                                    "r1_k3_s11_e1_i24_o24_se0.25_hsig_conv_hs")
    model = build_model(arch)
    assert sum(w.numpy().size for w in model.trainable_weights) == Network(arch).params
    assert tuple(model.output_shape) == (1, 1000)
