"""Block strings and architecture strings: the grammar, its round trips and its error messages."""

from __future__ import annotations

import pytest

from latprof.arch import REFERENCES, SKIP_IDENTITY, SKIP_NONE, SKIP_POOL, Architecture, Block, round_filters
from latprof.errors import LatprofError
from latprof.space import SearchSpace


@pytest.mark.parametrize("text, expected", [
    ("r1_k3_s11_e1_i32_o16", Block(1, 3, 1, 1, 32, 16)),
    ("r2_k5_s22_e6_i16_o24", Block(2, 5, 2, 6, 16, 24)),
    ("r3_k5_s22_e3_i24_o40_se0.25", Block(3, 5, 2, 3, 24, 40, se_ratio=0.25)),
    ("r1_k3_s11_e1_i32_o16_noskip", Block(1, 3, 1, 1, 32, 16, skip=SKIP_NONE)),
    ("r2_k3_s22_e6_i24_o24_poolskip", Block(2, 3, 2, 6, 24, 24, skip=SKIP_POOL)),
    ("r1_k5_s11_e1_i24_o32_conv", Block(1, 5, 1, 1, 24, 32, regular_conv=True)),
    ("r4_k3_s22_e1_i40_o40_se0.25_poolskip_conv",
     Block(4, 3, 2, 1, 40, 40, se_ratio=0.25, skip=SKIP_POOL, regular_conv=True)),
    ("r1_k3_s11_e1_i192_o320_se0.5_noskip_conv",
     Block(1, 3, 1, 1, 192, 320, se_ratio=0.5, skip=SKIP_NONE, regular_conv=True)),
])
def test_block_string_round_trip(text, expected):
    block = Block.from_string(text)
    assert block == expected
    assert block.to_string() == text
    assert Block.from_string(block.to_string()) == block


def test_block_flags_in_any_order_decode_the_same():
    a = Block.from_string("r1_k3_s11_e1_i32_o32_conv_poolskip_se0.25")
    b = Block.from_string("r1_k3_s11_e1_i32_o32_se0.25_poolskip_conv")
    assert a == b
    assert a.skip == SKIP_POOL and a.regular_conv and a.se_ratio == 0.25


def test_default_skip_is_identity():
    assert Block.from_string("r1_k3_s11_e6_i16_o16").skip == SKIP_IDENTITY


@pytest.mark.parametrize("text, resolution, width, stem, head, classes, blocks", [
    ("res160_w0.75:r1_k3_s11_e1_i32_o16,r2_k3_s22_e6_i16_o24", 160, 0.75, 32, 1280, 1000, 2),
    ("res128_w0.5_stem16_head1024_cls10:r1_k3_s11_e1_i16_o8_noskip", 128, 0.5, 16, 1024, 10, 1),
    ("r1_k3_s11_e1_i32_o16_conv,r2_k5_s22_e3_i16_o24_se0.25_poolskip", 224, 1.0, 32, 1280, 1000, 2),
    ("w1.4:r1_k3_s11_e1_i32_o16", 224, 1.4, 32, 1280, 1000, 1),
    ("cls100:r1_k3_s11_e1_i32_o16", 224, 1.0, 32, 1280, 100, 1),
])
def test_architecture_string_round_trip(text, resolution, width, stem, head, classes, blocks):
    arch = Architecture.from_string(text)
    assert (arch.resolution, arch.width, arch.stem, arch.head, arch.classes) == (resolution, width, stem, head, classes)
    assert len(arch.blocks) == blocks
    again = Architecture.from_string(arch.to_string())
    assert again == arch
    assert again.to_string() == arch.to_string()


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_names_round_trip(name):
    arch = Architecture.from_string(name)
    assert arch == REFERENCES[name]
    assert arch.name == name
    assert Architecture.from_string(arch.to_string()) == arch
    assert Architecture.from_string(name.upper()) == arch


def test_reference_with_global_settings_either_side():
    base = REFERENCES["mobilenetv2"]
    for text in ("mobilenetv2:res128_w0.5", "res128_w0.5:mobilenetv2"):
        arch = Architecture.from_string(text)
        assert arch.blocks == base.blocks
        assert (arch.resolution, arch.width) == (128, 0.5)
        assert (arch.stem, arch.head, arch.classes) == (base.stem, base.head, base.classes)
        assert Architecture.from_string(arch.to_string()) == arch
    small = Architecture.from_string("res160_w0.75:mnasnet-small")
    assert small.stem == 8 and small.resolution == 160 and small.width == 0.75


def test_global_part_is_written_in_full():
    text = Architecture.from_string("mnasnet-a1").to_string()
    assert text.startswith("res224_w1_stem32_head1280_cls1000:r1_k3_s11_e1_i32_o16_noskip,")
    assert "_se0.25" in text


@pytest.fixture(scope="module")
def sampled():
    return SearchSpace().sample_many(200, seed=7)


def test_sampled_architectures_round_trip(sampled):
    assert len(sampled) == 200
    for arch in sampled:
        text = arch.to_string()
        again = Architecture.from_string(text)
        assert again == arch, text
        assert again.to_string() == text
        for block in arch.blocks:
            assert Block.from_string(block.to_string()) == block


def test_sampled_architectures_use_every_flag(sampled):
    """The 200 draws exercise the whole grammar, so the round trip above means something."""
    blocks = [block for arch in sampled for block in arch.blocks]
    assert {b.skip for b in blocks} == {SKIP_IDENTITY, SKIP_NONE, SKIP_POOL}
    assert any(b.regular_conv for b in blocks) and any(not b.regular_conv for b in blocks)
    assert {b.se_ratio for b in blocks} == {0.0, 0.25}
    assert {b.kernel for b in blocks} == {3, 5}
    assert {a.resolution for a in sampled} == {128, 160, 192, 224}


def test_sampling_is_reproducible(sampled):
    space = SearchSpace()
    assert space.sample_many(200, seed=7) == sampled
    assert [a.to_string() for a in space.sample_many(200, seed=7)] == [a.to_string() for a in sampled]
    assert space.sample_many(200, seed=8) != sampled
    assert space.sample_many(20, seed=7) == sampled[:20]


def test_decode_checks_every_decision():
    space = SearchSpace()
    choices = space.choices()
    zeros = [0] * len(choices)
    assert isinstance(space.decode(zeros), Architecture)
    top = [len(c.options) - 1 for c in choices]
    assert isinstance(space.decode(top), Architecture)
    for index in (0, 1, len(choices) - 1):
        too_big = list(zeros)
        too_big[index] = len(choices[index].options)
        with pytest.raises(LatprofError, match="do not fit"):
            space.decode(too_big)
        negative = list(zeros)
        negative[index] = -1
        with pytest.raises(LatprofError, match="do not fit"):
            space.decode(negative)
    with pytest.raises(LatprofError):
        space.decode(zeros[:-1])
    with pytest.raises(LatprofError):
        space.decode(zeros + [0])


def test_decode_values():
    space = SearchSpace()
    choices = space.choices()
    decisions = [0] * len(choices)
    names = [c.name for c in choices]
    decisions[names.index("resolution")] = space.resolutions.index(192)
    decisions[names.index("multiplier")] = space.multipliers.index(0.75)
    decisions[names.index("b2.conv_op")] = space.conv_ops.index("mbconv_e6")
    decisions[names.index("b2.kernel")] = 1
    decisions[names.index("b2.se")] = 1
    decisions[names.index("b2.skip")] = space.skips.index("none")
    decisions[names.index("b2.width")] = space.width_ratios.index(1.25)
    decisions[names.index("b2.layers")] = 2
    arch = space.decode(decisions)
    assert (arch.resolution, arch.width) == (192, 0.75)
    block = arch.blocks[2]
    assert block == Block(repeats=4, kernel=5, stride=2, expand=6, in_filters=arch.blocks[1].out_filters,
                          out_filters=40, se_ratio=0.25, skip=SKIP_NONE)
    assert arch.blocks[0].regular_conv and arch.blocks[0].skip == SKIP_POOL


@pytest.mark.parametrize("text, hint", [
    ("r1_k3_s11_e1_i32_o16_nosip", "nosip"),
    ("r1_k3_s12_e1_i32_o16", "s11 or s22"),
    ("r1_k3_s11_e1_i32", "missing"),
    ("r1_k3_s11_e1_i32_o16_noskip_poolskip", "bad flags"),
    ("r1_k3_s11_e1_i32_o16_k5", "repeated"),
    ("r1_k3_s33_e1_i32_o16", "stride"),
    ("r1_k3_s11_e6_i32_o16_conv", "e1"),
    ("r0_k3_s11_e1_i32_o16", "repeats"),
    ("r1_k3_s11_e1_i32_o16_se1.5", "se ratio"),
    ("r1_k3_s11_e1_i32_o16_se0.2.5", "cannot read"),
    ("R1_K3_S11_E1_I32_O16", "bad or repeated token"),
])
def test_block_typos_are_explained(text, hint):
    with pytest.raises(LatprofError) as info:
        Block.from_string(text)
    assert hint in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(LatprofError):
        Architecture.from_string(f"res160:{text}")


def test_unknown_block_token_message_shows_the_grammar():
    with pytest.raises(LatprofError) as info:
        Architecture.from_string("r1_k3_s11_e1_i32_o16_nosip")
    message = str(info.value)
    assert "'nosip'" in message and "r1_k3_s11_e1_i32_o16_nosip" in message
    assert "r{repeats}_k{kernel}" in message and "_noskip" in message


@pytest.mark.parametrize("text, hint", [
    ("foo3:r1_k3_s11_e1_i32_o16", "'foo3'"),
    ("res160_wx:r1_k3_s11_e1_i32_o16", "unknown setting"),
    ("res160_w0.75:mobilenetv3", "unknown"),
    ("mobilenetv2:res", "unknown setting"),
    ("", "at least one block"),
    ("   ", "at least one block"),
    ("res224:", "at least one block"),
    ("res4:r1_k3_s11_e1_i32_o16", "invalid global settings"),
    ("w0:r1_k3_s11_e1_i32_o16", "invalid global settings"),
])
def test_architecture_typos_are_explained(text, hint):
    with pytest.raises(LatprofError) as info:
        Architecture.from_string(text)
    assert hint in str(info.value)


def test_unknown_global_lists_the_known_ones():
    with pytest.raises(LatprofError) as info:
        Architecture.from_string("foo3:r1_k3_s11_e1_i32_o16")
    message = str(info.value)
    for known in ("res", "stem", "head", "cls", "mnasnet-a1", "mobilenetv2"):
        assert known in message


def _reference_round_filters(filters, multiplier, divisor=8):
    """tensorflow/tpu mnasnet_models.round_filters, written out independently."""
    filters *= multiplier
    new_filters = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    if new_filters < 0.9 * filters:
        new_filters += divisor
    return int(new_filters)


@pytest.mark.parametrize("filters, multiplier, expected", [
    (32, 1.0, 32),
    (16, 1.0, 16),
    (18, 1.0, 24),   # 16 would be 11% below 18: one step up
    (20, 1.0, 24),   # halfway rounds up
    (19, 1.0, 24),
    (12, 1.0, 16),
    (10, 1.0, 16),   # 8 is 20% below 10
    (32, 0.5, 16),
    (16, 0.5, 8),
    (16, 0.35, 8),   # never below the divisor
    (24, 0.75, 24),  # 18 -> 16 is 11% down -> 24
    (96, 0.75, 72),
    (320, 1.4, 448),
    (1280, 1.0, 1280),
    (40, 1.25, 48),  # 50 -> 48 is within 10%
])
def test_round_filters(filters, multiplier, expected):
    assert round_filters(filters, multiplier) == expected
    assert round_filters(filters, multiplier) == _reference_round_filters(filters, multiplier)


@pytest.mark.parametrize("multiplier", [0.35, 0.5, 0.75, 1.0, 1.25, 1.4, 2.0])
def test_round_filters_rule(multiplier):
    for filters in range(1, 700):
        rounded = round_filters(filters, multiplier)
        scaled = filters * multiplier
        assert rounded % 8 == 0 and rounded >= 8
        assert rounded >= 0.9 * scaled
        assert rounded == _reference_round_filters(filters, multiplier)
