"""The ProxylessNAS/OFA yaml LUT format: import, prediction from layer rows, export, round trip, bad input.

Every yaml file here is written by the tests, with made-up numbers, for a tiny network.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from latprof.arch import Architecture, Block
from latprof.cli import main
from latprof.errors import LatprofError
from latprof.lut import COLUMNS, ISOLATED_SOURCE, LUT
from latprof.measurement import Provenance
from latprof.network import Network, block_layers
from latprof.predict import predict, predict_ops
from latprof.proxyless import (
    IMPORT_METHOD,
    LayerKey,
    export_entries,
    export_layers,
    export_yaml,
    import_yaml,
    layer_keys,
    layer_parts,
    predict_layers,
)
from latprof.space import get_space

# stem 8 at 32x32, one e1 k3 layer 8 -> 8 (identity skip), two e3 k5 layers 8 -> 16 (s2), head 32, 10 classes
TINY = "res32_w1.0_stem8_head32_cls10:r1_k3_s11_e1_i8_o8,r2_k5_s22_e3_i8_o16"
TINY_ENTRIES = {  # key -> (count, mean ms, var ms^2), in network order; the means are awkward floats on purpose
    "Conv-input:32x32x3-output:16x16x8": (50, 0.4172839506172839, 0.0025),
    "expanded_conv-input:16x16x8-output:16x16x8-expand:1-kernel:3-stride:1-idskip:1": (40, 0.21234567891234, 0.0001),
    "expanded_conv-input:16x16x8-output:8x8x16-expand:3-kernel:5-stride:2-idskip:0": (41, 0.3333333333333333, 0.0),
    "expanded_conv-input:8x8x16-output:8x8x16-expand:3-kernel:5-stride:1-idskip:1": (42, 0.1, 0.00012),
    "Conv_1-input:8x8x16-output:8x8x32": (50, 0.0777, 0.00003),
    "Logits-input:8x8x32-output:10": (50, 0.0123456789, 0.000001),
}
UNUSED = {"expanded_conv-input:8x8x16-output:8x8x16-expand:6-kernel:3-stride:1-idskip:1": (30, 0.5, 0.01)}


def write_yaml(path, entries: dict) -> str:
    path.write_text(yaml.safe_dump({k: {"count": c, "mean": m, "var": v} for k, (c, m, v) in entries.items()}))
    return str(path)


@pytest.fixture
def tiny_yaml(tmp_path) -> str:
    return write_yaml(tmp_path / "tiny.yaml", {**TINY_ENTRIES, **UNUSED})


def invoke(*args):
    """The CLI in process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code, stdout, stderr, *hints):
    lines = stderr.splitlines()
    assert code == 2, (code, stderr)
    assert len(lines) == 1 and lines[0].startswith("latprof: error: "), stderr
    assert "Traceback" not in stderr + stdout
    for hint in hints:
        assert hint in lines[0], lines[0]


# ---- the key of a latprof layer ----

def test_layer_keys_of_the_proxylessnas_network():
    """MobileNetV2-like nets of the ProxylessNAS space (k7 included) are architectures, keyed as the format is."""
    stages = [(4, 2, 24), (4, 2, 40), (4, 2, 80), (4, 1, 96), (4, 2, 192), (1, 1, 320)]
    blocks, width = ["r1_k3_s11_e1_i32_o16"], 16
    for repeats, stride, out in stages:
        blocks.append(f"r{repeats}_k7_s{stride}{stride}_e6_i{width}_o{out}")
        width = out
    arch = Architecture.from_string("res224_w1.0_stem32_head1280_cls1000:" + ",".join(blocks))
    keys = [key for layer in Network(arch).layers for key in layer_keys(layer)]
    assert len(keys) == 1 + 1 + 21 + 2
    assert keys[:4] == ["Conv-input:224x224x3-output:112x112x32",
                        "expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:3-stride:1-idskip:0",
                        "expanded_conv-input:112x112x16-output:56x56x24-expand:6-kernel:7-stride:2-idskip:0",
                        "expanded_conv-input:56x56x24-output:56x56x24-expand:6-kernel:7-stride:1-idskip:1"]
    assert "expanded_conv-input:14x14x80-output:14x14x96-expand:6-kernel:7-stride:1-idskip:0" in keys
    assert keys[-3:] == ["expanded_conv-input:7x7x192-output:7x7x320-expand:6-kernel:7-stride:1-idskip:0",
                         "Conv_1-input:7x7x320-output:7x7x1280", "Logits-input:7x7x1280-output:1000"]
    assert sum(key.endswith("idskip:1") for key in keys) == 3 * 5  # three per stage of 4, none in the last


def test_layers_the_format_cannot_express():
    (regular,) = block_layers(Block(1, 3, 1, 1, 16, 16, regular_conv=True), 8, 16, 16)
    (pool,) = block_layers(Block(1, 3, 2, 6, 16, 16, skip="pool"), 8, 16, 16)
    (se,) = block_layers(Block(1, 5, 1, 6, 16, 16, se_ratio=0.25), 8, 16, 16)
    (noskip,) = block_layers(Block(1, 3, 1, 6, 16, 16, skip="none"), 8, 16, 16)
    assert layer_keys(regular) is None and layer_keys(pool) is None and layer_keys(se) is None
    assert layer_keys(se, "ofa") == ("expanded_conv-input:8x8x16-output:8x8x16-expand:96-kernel:5-stride:1-idskip:1"
                                     "-se:1-hs:0",)
    assert layer_keys(noskip) == ("expanded_conv-input:8x8x16-output:8x8x16-expand:6-kernel:3-stride:1-idskip:0",)
    head = Network(Architecture.from_string(TINY)).layers[-1]
    assert layer_keys(head, "ofa") == ("Conv_1-input:8x8x16-output:8x8x32", "AvgPool2D-input:8x8x32-output:1x1x32",
                                       "Logits-input:1x1x32-output:10")


def test_mobilenetv3_layers_in_both_variants():
    """OFA keys say h-swish (hs:1) and squeeze-excite (se:1) and time MobileNetV3's mix conv as Conv_2;
    ProxylessNAS keys have neither, so such layers are not expressible there."""
    layers = Network(Architecture.from_string("mobilenetv3-large")).layers
    ofa = [layer_keys(layer, "ofa") for layer in layers]
    assert ofa[0] == ("Conv-input:224x224x3-output:112x112x16",)
    assert ofa[4] == ("expanded_conv-input:56x56x24-output:28x28x40-expand:72-kernel:5-stride:2-idskip:0-se:1-hs:0",)
    assert ofa[8] == ("expanded_conv-input:14x14x80-output:14x14x80-expand:200-kernel:3-stride:1-idskip:1-se:0-hs:1",)
    assert ofa[12] == ("expanded_conv-input:14x14x112-output:14x14x112-expand:672-kernel:3-stride:1-idskip:1"
                       "-se:1-hs:1",)
    assert ofa[-1] == ("Conv_1-input:7x7x160-output:7x7x960", "AvgPool2D-input:7x7x960-output:1x1x960",
                       "Conv_2-input:1x1x960-output:1x1x1280", "Logits-input:1x1x1280-output:1000")
    assert [op for layer in layers for _, ops in layer_parts(layer, "ofa") for op in ops] == \
        list(Network(Architecture.from_string("mobilenetv3-large")).ops)
    proxyless = [layer_keys(layer) for layer in layers]
    assert proxyless[4] is None and proxyless[8] is None and proxyless[2] is not None
    assert proxyless[-1] == ("Conv_1-input:7x7x160-output:7x7x960", "Logits-input:7x7x960-output:1000")


def test_ofa_std_entries_import_as_their_square(tmp_path):
    """OFA's published tables write {count, mean, std}: the same LUT as {count, mean, var=std^2}."""
    std = {key: {"count": c, "mean": m, "std": math.sqrt(v)} for key, (c, m, v) in TINY_ENTRIES.items()}
    (tmp_path / "std.yaml").write_text(yaml.safe_dump(std))
    from_std, from_var = import_yaml(tmp_path / "std.yaml"), import_yaml(write_yaml(tmp_path / "var.yaml", TINY_ENTRIES))
    pd.testing.assert_frame_equal(from_std.table, from_var.table)
    assert from_std.provenance.details["var_ms2"] == pytest.approx(from_var.provenance.details["var_ms2"])


@pytest.mark.parametrize("key", [*TINY_ENTRIES, "Conv_2-input:1x1x960-output:1x1x1280",
                                 "expanded_conv-input:8x8x16-output:8x8x16-expand:96-kernel:5-stride:1-idskip:1-se:1-hs:1"])
def test_key_parse_and_text_agree(key):
    assert LayerKey.parse(key).text == key


# ---- import and prediction ----

def test_import_via_cli(tiny_yaml, tmp_path):
    out = tmp_path / "pixel.lut.json"
    code, stdout, stderr = invoke("lut", "import", tiny_yaml, "-o", out, "--device", "phone-x", "--threads", 4,
                                  "--dtype", "int8", "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["entries"] == 7 and summary["by_type"] == {"Conv": 1, "Conv_1": 1, "Logits": 1, "expanded_conv": 4}
    lut = LUT.load(out)
    assert lut.overhead_us == 0.0 and len(lut) == 7 and lut.sources == [tiny_yaml]
    for key, (count, mean, var) in {**TINY_ENTRIES, **UNUSED}.items():
        row = lut.table.loc[key]
        assert row["latency_us"] == pytest.approx(mean * 1000, abs=1e-6) and row["runs"] == count
        assert row["op"] == key.split("-")[0] and row["median_us"] == row["latency_us"]
        assert row["p95_us"] - row["latency_us"] == pytest.approx(1.6449 * math.sqrt(var) * 1000, rel=1e-4, abs=1e-5)
    p = lut.provenance
    digest = hashlib.sha256(open(tiny_yaml, "rb").read()).hexdigest()
    assert (p.device, p.hardware, p.runtime, p.threads, p.dtype, p.method) == (
        "phone-x", "imported from tiny.yaml", "unknown (imported)", 4, "int8", IMPORT_METHOD)
    assert p.binary_sha256 == digest == p.details["source_sha256"]
    assert p.details["source_file"] == "tiny.yaml" and p.details["entries"] == 7 and p.details["variant"] == "proxylessnas"
    assert p.details["var_ms2"] == {k: v for k, (_, _, v) in {**TINY_ENTRIES, **UNUSED}.items()}
    # No timing method of latprof measured it: commands measuring against it take their own options.
    assert lut.device_config() is None


def test_import_defaults_name_the_file(tiny_yaml):
    p = import_yaml(tiny_yaml).provenance
    assert p.device == p.hardware == "imported from tiny.yaml"
    assert (p.threads, p.delegate, p.dtype) == (1, "unknown", "float32")


def test_prediction_from_an_imported_lut_is_the_sum_of_the_entries(tiny_yaml):
    lut = import_yaml(tiny_yaml)
    hand_ms = sum(mean for _, mean, _ in TINY_ENTRIES.values())
    prediction = predict(TINY, lut)
    assert prediction.missing == [] and prediction.latency_ms == round(hand_ms, 4)
    assert prediction.known_ms == pytest.approx(hand_ms, abs=1e-9)
    assert [row["key"] for row in prediction.breakdown] == list(TINY_ENTRIES)
    assert {row["source"] for row in prediction.breakdown} == {"layer row"}
    assert prediction.ops == len(Network(Architecture.from_string(TINY)).ops)
    # the same through predict_layers, and through the CLI
    assert predict_layers(Architecture.from_string(TINY), lut).latency_ms == prediction.latency_ms


def test_prediction_cli_from_an_imported_lut(tiny_yaml, tmp_path):
    out = tmp_path / "lut.json"
    assert invoke("lut", "import", tiny_yaml, "-o", out)[0] == 0
    code, stdout, stderr = invoke("predict", TINY, "--lut", out, "--json")
    assert code == 0, stderr
    (row,) = json.loads(stdout)
    assert row["latency_ms"] == round(sum(mean for _, mean, _ in TINY_ENTRIES.values()), 4)


def test_the_search_reads_an_imported_lut(tiny_yaml):
    from latprof.search.latency import LutLatency

    arch = Architecture.from_string(TINY)
    assert LutLatency(import_yaml(tiny_yaml)).latency_ms(arch) == (predict(TINY, import_yaml(tiny_yaml)).latency_ms, "lut")
    with pytest.raises(LatprofError, match="lacks"):  # a layer without a row, no device to profile it on
        LutLatency(import_yaml(tiny_yaml)).latency_ms(Architecture.from_string(TINY.replace("k5", "k7")))


def test_a_layer_the_table_lacks_is_missing_by_its_key(tiny_yaml):
    lut = import_yaml(tiny_yaml)
    arch = TINY.replace("r2_k5_s22_e3", "r2_k7_s22_e3")
    prediction = predict(arch, lut)
    assert prediction.latency_ms is None
    assert prediction.missing == [
        "expanded_conv-input:16x16x8-output:8x8x16-expand:3-kernel:7-stride:2-idskip:0",
        "expanded_conv-input:8x8x16-output:8x8x16-expand:3-kernel:7-stride:1-idskip:1"]
    known = sum(TINY_ENTRIES[k][1] for k in TINY_ENTRIES if "kernel:5" not in k)
    assert prediction.known_ms == pytest.approx(known, abs=1e-9)


def test_ofa_keys_and_squeeze_excite(tmp_path):
    arch = "res32_w1.0_stem8_head32_cls10:r1_k3_s11_e1_i8_o8,r1_k5_s22_e6_i8_o16_se0.25"
    entries = {"Conv-input:32x32x3-output:16x16x8": (9, 0.5, 0.0),
               "expanded_conv-input:16x16x8-output:16x16x8-expand:8-kernel:3-stride:1-idskip:1-se:0-hs:0": (9, 0.25, 0.0),
               "expanded_conv-input:16x16x8-output:8x8x16-expand:48-kernel:5-stride:2-idskip:0-se:1-hs:0": (9, 0.75, 0.0),
               "Conv_1-input:8x8x16-output:8x8x32": (9, 0.125, 0.0),
               "AvgPool2D-input:8x8x32-output:1x1x32": (9, 0.0625, 0.0),
               "Logits-input:1x1x32-output:10": (9, 0.03125, 0.0),
               "Conv_2-input:1x1x32-output:1x1x64": (9, 0.5, 0.0)}
    lut = import_yaml(write_yaml(tmp_path / "ofa.yaml", entries))
    assert lut.provenance.details["variant"] == "ofa"
    prediction = predict(arch, lut)
    assert prediction.missing == [] and prediction.latency_ms == round(0.5 + 0.25 + 0.75 + 0.125 + 0.0625 + 0.03125, 4)
    # without the SE layer's entry, the layer is missing by its OFA key
    del entries["expanded_conv-input:16x16x8-output:8x8x16-expand:48-kernel:5-stride:2-idskip:0-se:1-hs:0"]
    assert predict(arch, import_yaml(write_yaml(tmp_path / "ofa2.yaml", entries))).missing == [
        "expanded_conv-input:16x16x8-output:8x8x16-expand:48-kernel:5-stride:2-idskip:0-se:1-hs:0"]


# ---- export ----

def _op_lut(archs, overhead_us=2.0, drop=()) -> LUT:
    """An op-level LUT in memory: made-up latencies for every op of ``archs`` but ``drop``."""
    ops = sorted({op for arch in archs for op in Network(Architecture.from_string(arch)).ops})
    rows = [[op.key, op.op, 10.0 + 7 * i, 11.0 + 7 * i, 9.0 + 7 * i, 13.0 + 7 * i + i % 3, 20 + i % 5, ISOLATED_SOURCE]
            for i, op in enumerate(ops) if op.key not in drop]
    provenance = Provenance("host", "test cpu", "litert", "0" * 64, 1, "xnnpack", "float32", "test")
    return LUT(provenance, pd.DataFrame(rows, columns=COLUMNS).set_index("key"), overhead_us)


def test_export_of_an_op_level_lut(tmp_path):
    se_arch = "res32_w1.0_stem8_head32_cls10:r1_k3_s11_e1_i8_o8,r1_k5_s22_e6_i8_o16_se0.25,r1_k3_s11_e1_i16_o16_conv"
    lut = _op_lut([TINY, se_arch])
    entries, counts = export_entries(lut, export_layers(None, [TINY, se_arch]))
    layers = Network(Architecture.from_string(TINY)).layers
    stem, head = layers[0], layers[-1]
    assert counts["not_expressible"] == 2 and counts["incomplete"] == 0 and counts["from_layer_rows"] == 0
    assert set(TINY_ENTRIES) <= set(entries) and len(entries) == counts["from_ops"] == len(TINY_ENTRIES)

    def row(op):
        return lut.table.loc[op.key]

    # the stem's entry carries the once-per-network overhead; every other entry is net of it
    (stem_op,) = stem.ops()
    assert entries["Conv-input:32x32x3-output:16x16x8"]["mean"] == pytest.approx(row(stem_op)["latency_us"] / 1000)
    block = layers[2]
    key = "expanded_conv-input:16x16x8-output:8x8x16-expand:3-kernel:5-stride:2-idskip:0"
    assert entries[key]["mean"] == pytest.approx(sum(row(op)["latency_us"] - 2.0 for op in block.ops()) / 1000)
    assert entries[key]["count"] == min(row(op)["runs"] for op in block.ops())
    assert entries[key]["var"] == pytest.approx(
        sum(((row(op)["p95_us"] - row(op)["p5_us"]) / 3.2897 / 1000) ** 2 for op in block.ops()), rel=1e-4)
    assert entries["Logits-input:8x8x32-output:10"]["mean"] == pytest.approx(
        sum(row(op)["latency_us"] - 2.0 for op in head.ops()[1:]) / 1000)
    # a network's entries sum to latprof's own prediction, so importing the export predicts the same
    path = tmp_path / "export.yaml"
    export_yaml(lut, path, export_layers(None, [TINY]))
    assert predict(TINY, import_yaml(path)).latency_ms == pytest.approx(predict_ops(TINY, list(Network(
        Architecture.from_string(TINY)).ops), lut).latency_ms, abs=1e-4)


def test_export_skips_layers_with_missing_ops(tmp_path):
    block_op = Network(Architecture.from_string(TINY)).layers[2].ops()[0]
    entries, counts = export_entries(_op_lut([TINY], drop={block_op.key}), export_layers(None, [TINY]))
    assert counts["incomplete"] == 1 and len(entries) == len(TINY_ENTRIES) - 1
    assert "expanded_conv-input:16x16x8-output:8x8x16-expand:3-kernel:5-stride:2-idskip:0" not in entries


def test_export_cli_of_an_op_lut_with_the_space(tmp_path):
    """The space's layers are considered too; the reference MobileNetV2 lies in the space at width 1.0."""
    lut = _op_lut(["mobilenetv2"])
    lut.save(tmp_path / "ops.json")
    out = tmp_path / "out.yaml"
    code, stdout, stderr = invoke("lut", "export", tmp_path / "ops.json", "-o", out, "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["layers"] == len(get_space("mnasnet").unique_layers())
    assert summary["entries"] == summary["from_ops"] == len(yaml.safe_load(out.read_text()))
    net_keys = {k for layer in Network(Architecture.from_string("mobilenetv2")).layers for k in layer_keys(layer)}
    assert net_keys <= set(yaml.safe_load(out.read_text()))
    assert summary["not_expressible"] > 0 and summary["incomplete"] > 0
    assert predict("mobilenetv2", import_yaml(out)).latency_ms == pytest.approx(predict("mobilenetv2", lut).latency_ms,
                                                                                abs=1e-4)


def test_unique_layers_cover_sampled_architectures():
    space = get_space("mnasnet")
    every = space.unique_layers()
    for arch in space.sample_many(20, seed=5):
        assert set(Network(arch).layers) <= every, arch.to_string()


def test_round_trip(tiny_yaml, tmp_path):
    first = tmp_path / "first.json"
    assert invoke("lut", "import", tiny_yaml, "-o", first)[0] == 0
    code, stdout, stderr = invoke("lut", "export", first, "-o", tmp_path / "back.yaml", "--space", "none", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["from_layer_rows"] == json.loads(stdout)["entries"] == 7
    assert invoke("lut", "import", tmp_path / "back.yaml", "-o", tmp_path / "second.json")[0] == 0
    a, b = LUT.load(first), LUT.load(tmp_path / "second.json")
    pd.testing.assert_frame_equal(a.table, b.table.loc[a.table.index], check_exact=True)
    assert a.provenance.details["var_ms2"] == b.provenance.details["var_ms2"]
    # the yaml written back holds the same entries (means to 1e-9 ms)
    original, back = yaml.safe_load(open(tiny_yaml)), yaml.safe_load((tmp_path / "back.yaml").read_text())
    assert set(original) == set(back)
    for key, entry in original.items():
        assert back[key]["count"] == entry["count"] and back[key]["var"] == entry["var"]
        assert back[key]["mean"] == pytest.approx(entry["mean"], abs=1e-9)


# ---- bad input: one line, exit code 2, nothing written ----

@pytest.mark.parametrize("text, hints", [
    ("a: [1, 2\n", ["not valid YAML"]),
    ("", ["found nothing"]),
    ("- 1\n- 2\n", ["found a list"]),
    ("{}\n", ["found an empty dict"]),
    ("Conv-input:32x32x3-output:16x16x8: 3.5\n", ["Conv-input:32x32x3-output:16x16x8", "{count, mean, var}"]),
    ("Conv-input:32x32x3-output:16x16x8: {count: 3, mean: 1.0}\n", ["{count, mean, var}", "['count', 'mean']"]),
    ("Conv-input:32x32x3-output:16x16x8: {count: 3, mean: 0, var: 0}\n", ["mean 0", "positive"]),
    ("Conv-input:32x32x3-output:16x16x8: {count: 3, mean: -1.5, var: 0}\n", ["mean -1.5", "positive"]),
    ("Conv-input:32x32x3-output:16x16x8: {count: 3, mean: fast, var: 0}\n", ["mean 'fast'", "positive"]),
    ("Conv-input:32x32x3-output:16x16x8: {count: 0, mean: 1.0, var: 0}\n", ["count >= 1"]),
    ("Conv-input:32x32x3-output:16x16x8: {count: 3, mean: 1.0, var: -2}\n", ["var >= 0"]),
    ("Conv-input:32x32x3-output:16x16x8: {count: 3, mean: 1.0, std: -0.1}\n", ["std >= 0"]),
    ("Conv-input:32x32x3-output:16x16x8: {count: 3, mean: 1.0, std: 0.1, var: 0.01}\n",
     ["{count, mean, std}", "['count', 'mean', 'std', 'var']"]),
    ("Pool-input:8x8x8-output:1x1x8: {count: 3, mean: 1.0, var: 0}\n", ["'Pool-input:8x8x8-output:1x1x8'", "supported"]),
    ("expanded_conv-input:8x8x8-output:8x8x8-expand:3: {count: 3, mean: 1.0, var: 0}\n",
     ["expanded_conv-input:8x8x8-output:8x8x8-expand:3", "kernel"]),
    ("Conv-input:8x8-output:4x4x8: {count: 3, mean: 1.0, var: 0}\n", ["Conv-input:8x8-output:4x4x8", "shapes"]),
    ("Conv-input:axbx3-output:4x4x8: {count: 3, mean: 1.0, var: 0}\n", ["Conv-input:axbx3-output:4x4x8", "integers"]),
])
def test_bad_yaml_is_refused(tmp_path, text, hints):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = tmp_path / "out.json"
    assert_one_line_error(*invoke("lut", "import", path, "-o", out), str(path), *hints)
    assert not out.exists()


def test_missing_yaml_is_refused(tmp_path):
    absent = tmp_path / "absent.yaml"
    assert_one_line_error(*invoke("lut", "import", absent, "-o", tmp_path / "out.json"), str(absent), "no such file")


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "lut.yaml"
    path.write_bytes(b"\x00\x01\xff\xfe" * 20)
    assert_one_line_error(*invoke("lut", "import", path, "-o", tmp_path / "out.json"), str(path), "not valid YAML")


def test_export_of_a_missing_lut_is_refused(tmp_path):
    out = tmp_path / "out.yaml"
    assert_one_line_error(*invoke("lut", "export", tmp_path / "absent.json", "-o", out), "no such LUT")
    assert not out.exists()


def test_export_with_nothing_to_export_is_refused(tmp_path):
    """Only the stem's op is in the LUT, and the space is left out: no entry is complete but the stem's."""
    stem_only = _op_lut([TINY], drop={op.key for layer in Network(Architecture.from_string(TINY)).layers[1:]
                                      for op in layer.ops()})
    assert len(export_entries(stem_only, export_layers(None, [TINY]))[0]) == 1
    empty = _op_lut([TINY], drop={op.key for op in Network(Architecture.from_string(TINY)).ops})
    assert len(empty) == 0
    with pytest.raises(LatprofError, match="nothing to export"):
        export_yaml(empty, tmp_path / "x.yaml", export_layers(None, [TINY]))
    lut = _op_lut(["mobilenetv2"])
    lut.save(tmp_path / "lut.json")
    out = tmp_path / "out.yaml"
    assert_one_line_error(*invoke("lut", "export", tmp_path / "lut.json", "-o", out, "--space", "none", "--arch", TINY),
                          "nothing to export")
    assert not out.exists()


def test_export_of_a_typo_architecture_is_refused(tmp_path):
    _op_lut([TINY]).save(tmp_path / "lut.json")
    assert_one_line_error(*invoke("lut", "export", tmp_path / "lut.json", "-o", tmp_path / "o.yaml", "--space", "none",
                                  "--arch", "r1_k3_s11_e1_i32_o16_nosip"), "nosip")


def test_import_and_export_verbs_do_not_import_tensorflow(tiny_yaml, tmp_path, python_executable, cli_env):
    code = ("import sys\nfrom latprof.cli import main\n"
            "for args in (['lut', 'import', sys.argv[1], '-o', sys.argv[2]],\n"
            "             ['lut', 'export', sys.argv[2], '-o', sys.argv[3]]):\n"
            "    try:\n        main(args)\n    except SystemExit as exit:\n        assert exit.code == 0, exit.code\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'\n")
    result = subprocess.run([python_executable, "-c", code, tiny_yaml, str(tmp_path / "l.json"), str(tmp_path / "e.yaml")],
                            capture_output=True, text=True, env=cli_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "e.yaml").is_file()
