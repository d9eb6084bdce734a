"""``latprof arch import``: ProxylessNAS and OFA MobileNetV3 net.config files as architectures, and
the done-when check of issue 26: an imported OFA network, predicted from an imported OFA yaml LUT
of the same resolution, costs exactly the sum of the table's rows.

Every net.config and yaml here is written by the tests, in the field names of the two projects'
``config`` properties (mit-han-lab/once-for-all ofa/utils/layers.py, mit-han-lab/proxylessnas
proxyless_nas/layers.py), with made-up latencies.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess

import pytest
import yaml
from click.testing import CliRunner

from latprof.arch import SKIP_NONE, Architecture
from latprof.cli import main
from latprof.net_config import architecture
from latprof.network import Network

# OFA MobileNetV3 subnet: (out, kernel, stride, expand, act, se) after OFA's fixed first block 16 -> 16
OFA_LAYERS = [(24, 3, 2, 4, "relu", False), (24, 3, 1, 3, "relu", False),
              (40, 5, 2, 3, "relu", True), (40, 5, 1, 3, "relu", True), (40, 5, 1, 3, "relu", True),
              (80, 3, 2, 6, "h_swish", False), (80, 3, 1, 4, "h_swish", False), (80, 7, 1, 4, "h_swish", False),
              (112, 3, 1, 6, "h_swish", True), (112, 5, 1, 6, "h_swish", True),
              (160, 5, 2, 6, "h_swish", True), (160, 5, 1, 6, "h_swish", True), (160, 5, 1, 6, "h_swish", True)]
# ProxylessNAS mobile-like: (out, kernel, stride, expand), None for a ZeroLayer the search dropped
PROXYLESS_LAYERS = [(16, 3, 1, 1), (24, 5, 2, 3), None, (24, 3, 1, 3), (40, 7, 2, 3), (40, 3, 1, 3),
                    (80, 7, 2, 6), (96, 5, 1, 3), (192, 7, 2, 6), (320, 7, 1, 6)]


def _conv(cin, cout, kernel=1, stride=1, act="relu", **extra) -> dict:
    return {"name": "ConvLayer", "in_channels": cin, "out_channels": cout, "kernel_size": kernel, "stride": stride,
            "dilation": 1, "groups": 1, "bias": False, "has_shuffle": False, "use_bn": True, "act_func": act,
            "dropout_rate": 0, "ops_order": "weight_bn_act", **extra}


def _identity(cin, cout) -> dict:
    return {"name": "IdentityLayer", "in_channels": cin, "out_channels": cout, "use_bn": False, "act_func": None,
            "dropout_rate": 0, "ops_order": "weight_bn_act"}


def _linear(features, classes) -> dict:
    return {"name": "LinearLayer", "in_features": features, "out_features": classes, "bias": True, "use_bn": False,
            "act_func": None, "dropout_rate": 0.1, "ops_order": "weight_bn_act"}


def ofa_config() -> dict:
    blocks, cin = [], 16
    for cout, kernel, stride, expand, act, se in [(16, 3, 1, 1, "relu", False), *OFA_LAYERS]:
        conv = {"name": "MBConvLayer", "in_channels": cin, "out_channels": cout, "kernel_size": kernel,
                "stride": stride, "expand_ratio": expand, "mid_channels": cin * expand if expand > 1 else None,
                "act_func": act, "use_se": se, "groups": None}
        shortcut = _identity([cin], [cout]) if stride == 1 and cin == cout else None
        blocks.append({"name": "ResidualBlock", "conv": conv, "shortcut": shortcut})
        cin = cout
    return {"name": "MobileNetV3", "bn": {"momentum": 0.1, "eps": 1e-5},
            "first_conv": _conv(3, 16, 3, 2, "h_swish"), "blocks": blocks,
            "final_expand_layer": _conv(cin, 6 * cin, act="h_swish"),
            "feature_mix_layer": _conv(6 * cin, 1280, act="h_swish", bias=True, use_bn=False),
            "classifier": _linear(1280, 1000)}


def proxyless_config() -> dict:
    blocks, cin = [], 32
    for layer in PROXYLESS_LAYERS:
        if layer is None:
            blocks.append({"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": {"name": "ZeroLayer", "stride": 1},
                           "shortcut": _identity(cin, cin)})
            continue
        cout, kernel, stride, expand = layer
        conv = {"name": "MBInvertedConvLayer", "in_channels": cin, "out_channels": cout, "kernel_size": kernel,
                "stride": stride, "expand_ratio": expand}
        blocks.append({"name": "MobileInvertedResidualBlock", "mobile_inverted_conv": conv,
                       "shortcut": _identity(cin, cout) if stride == 1 and cin == cout else None})
        cin = cout
    return {"name": "ProxylessNASNets", "bn": {"momentum": 0.1, "eps": 1e-3}, "first_conv": _conv(3, 32, 3, 2, "relu6"),
            "blocks": blocks, "feature_mix_layer": _conv(cin, 1280, act="relu6"), "classifier": _linear(1280, 1000)}


def ofa_keys(config: dict, image_size: int) -> list[str]:
    """The keys OFA's MBv3LatencyTable.predict_network_latency_given_config looks up, written out
    from its code (ofa/nas/efficiency_predictor/latency_lookup_table.py), independently of latprof."""
    def shape(*dims):
        return "x".join(map(str, dims))
    fsize = (image_size + 1) // 2
    keys = [f"Conv-input:{shape(image_size, image_size, 3)}-output:{shape(fsize, fsize, config['first_conv']['out_channels'])}"]
    for block in config["blocks"]:
        conv = block["conv"]
        out = int((fsize - 1) / conv["stride"] + 1)
        mid = conv["mid_channels"] or round(conv["in_channels"] * conv["expand_ratio"])
        keys.append(f"expanded_conv-input:{shape(fsize, fsize, conv['in_channels'])}-output:"
                    f"{shape(out, out, conv['out_channels'])}-expand:{mid}-kernel:{conv['kernel_size']}-stride:"
                    f"{conv['stride']}-idskip:{int(block['shortcut'] is not None)}-se:{int(conv['use_se'])}"
                    f"-hs:{int(conv['act_func'] == 'h_swish')}")
        fsize = out
    expand, mix = config["final_expand_layer"], config["feature_mix_layer"]
    return keys + [f"Conv_1-input:{shape(fsize, fsize, expand['in_channels'])}-output:"
                   f"{shape(fsize, fsize, expand['out_channels'])}",
                   f"AvgPool2D-input:{shape(fsize, fsize, expand['out_channels'])}-output:"
                   f"{shape(1, 1, expand['out_channels'])}",
                   f"Conv_2-input:{shape(1, 1, mix['in_channels'])}-output:{shape(1, 1, mix['out_channels'])}",
                   f"Logits-input:{shape(1, 1, config['classifier']['in_features'])}-output:"
                   f"{config['classifier']['out_features']}"]


def proxyless_keys(config: dict, image_size: int) -> list[str]:
    """ProxylessNAS' keys (search/utils/latency_estimator.py), written out from its code."""
    fsize = (image_size + 1) // 2
    keys = [f"Conv-input:{image_size}x{image_size}x3-output:{fsize}x{fsize}x{config['first_conv']['out_channels']}"]
    for block in config["blocks"]:
        conv = block["mobile_inverted_conv"]
        if conv["name"] == "ZeroLayer":
            continue
        out = int((fsize - 1) / conv["stride"] + 1)
        keys.append(f"expanded_conv-input:{fsize}x{fsize}x{conv['in_channels']}-output:{out}x{out}x"
                    f"{conv['out_channels']}-expand:{conv['expand_ratio']}-kernel:{conv['kernel_size']}-stride:"
                    f"{conv['stride']}-idskip:{int(block['shortcut'] is not None)}")
        fsize = out
    mix = config["feature_mix_layer"]
    return keys + [f"Conv_1-input:{fsize}x{fsize}x{mix['in_channels']}-output:{fsize}x{fsize}x{mix['out_channels']}",
                   f"Logits-input:{fsize}x{fsize}x{mix['out_channels']}-output:{config['classifier']['out_features']}"]


def make_divisible(value: float, divisor: int = 8) -> int:
    """OFA's make_divisible (ofa/utils/common_tools.py)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


# ---- the imported architecture ----

def test_ofa_config_imports_layer_by_layer():
    config = ofa_config()
    arch = architecture(config, 224)
    assert (arch.stem, arch.head, arch.mix, arch.classes, arch.hswish) == (16, 960, 1280, 1000, True)
    # repeated layers fold into blocks, as published strings write them
    assert arch.blocks[3].to_string() == "r3_k5_s22_e3_i24_o40_se0.25_hsig"
    blocks = Network(arch).layers[1:-1]
    assert len(blocks) == len(config["blocks"])
    for layer, block in zip(blocks, config["blocks"]):
        conv = block["conv"]
        assert (layer.in_ch, layer.out_ch, layer.kernel, layer.stride) == \
            (conv["in_channels"], conv["out_channels"], conv["kernel_size"], conv["stride"])
        assert layer.mid_ch == (conv["mid_channels"] or conv["in_channels"])
        assert (layer.hswish, layer.hard_se, bool(layer.se_ch)) == (conv["act_func"] == "h_swish", conv["use_se"],
                                                                      conv["use_se"])
        if conv["use_se"]:  # OFA's SEModule: make_divisible(mid // 4, 8)
            assert layer.se_ch == make_divisible(layer.mid_ch // 4)
        assert (layer.shortcut != SKIP_NONE) == (block["shortcut"] is not None)
    assert Architecture.from_string(arch.to_string()) == arch


def test_proxyless_config_drops_zero_layers_and_keeps_shortcuts():
    arch = architecture(proxyless_config(), 192)
    layers = Network(arch).layers
    assert (arch.resolution, arch.stem, arch.head, arch.mix, arch.hswish) == (192, 32, 1280, 0, False)
    assert len(layers) == 2 + sum(layer is not None for layer in PROXYLESS_LAYERS)
    assert [layer.shortcut != SKIP_NONE for layer in layers[1:-1]] == [False, False, True, False, True, False, False,
                                                                       False, False]


def test_a_missing_shortcut_where_one_fits_is_noskip():
    config = ofa_config()
    config["blocks"][2]["shortcut"] = None  # 24 -> 24, stride 1
    arch = architecture(config)
    assert "r1_k3_s11_e3_i24_o24_noskip" in arch.to_string()
    assert Network(arch).layers[3].shortcut == SKIP_NONE


# ---- done when: import a net.config and its table, predict the sum of the rows ----

@pytest.mark.parametrize("spread", ["var", "std"])
def test_imported_ofa_network_costs_the_sum_of_the_published_rows(run_cli, tmp_path, spread):
    config, resolution = ofa_config(), 160
    (tmp_path / "net.config").write_text(json.dumps(config, indent=2))
    keys = ofa_keys(config, resolution)
    means = {key: round(0.137 + 0.011 * i, 3) for i, key in enumerate(dict.fromkeys(keys))}  # ms; a repeated layer
    published_sum = sum(means[key] for key in keys)  # has one row, counted once per layer
    entries = {key: {"count": 495, "mean": mean, spread: 0.0009 if spread == "std" else 0.0009 ** 2}
               for key, mean in means.items()}
    entries["expanded_conv-input:20x20x40-output:20x20x40-expand:240-kernel:7-stride:1-idskip:1-se:1-hs:1"] = \
        {"count": 495, "mean": 9.0, spread: 0.0}  # a row of another subnet
    (tmp_path / "ofa.yaml").write_text(yaml.safe_dump(entries))

    result = run_cli("arch", "import", tmp_path / "net.config", "--resolution", resolution, "-o", tmp_path / "net.arch")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "net.arch").read_text().strip()
    assert result.stdout.strip() == text and text.startswith(f"res{resolution}_")
    assert run_cli("lut", "import", tmp_path / "ofa.yaml", "-o", tmp_path / "ofa.lut.json").returncode == 0
    result = run_cli("predict", text, "--lut", tmp_path / "ofa.lut.json", "--breakdown", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["latency_ms"] == round(published_sum, 4) and row["missing"] == []
    assert [r["key"] for r in row["breakdown"]] == keys
    assert {r["source"] for r in row["breakdown"]} == {"layer row"}


def test_imported_proxyless_network_costs_the_sum_of_the_rows(tmp_path):
    config, resolution = proxyless_config(), 224
    (tmp_path / "net.config").write_text(json.dumps(config))
    keys = proxyless_keys(config, resolution)
    means = {key: round(0.5 + 0.25 * i, 2) for i, key in enumerate(dict.fromkeys(keys))}
    (tmp_path / "table.yaml").write_text(yaml.safe_dump({k: {"count": 50, "mean": m, "var": 0.0001}
                                                         for k, m in means.items()}))
    code, text, stderr = invoke("arch", "import", tmp_path / "net.config")
    assert code == 0, stderr
    assert invoke("lut", "import", tmp_path / "table.yaml", "-o", tmp_path / "lut.json")[0] == 0
    code, stdout, stderr = invoke("predict", text.strip(), "--lut", tmp_path / "lut.json", "--json")
    assert code == 0, stderr
    (row,) = json.loads(stdout)
    assert row["latency_ms"] == round(sum(means[key] for key in keys), 4)
    assert math.isclose(row["known_ms"], sum(means[key] for key in keys), abs_tol=1e-9)


def test_json_output_describes_the_network(tmp_path):
    (tmp_path / "net.config").write_text(json.dumps(ofa_config()))
    code, stdout, _ = invoke("arch", "import", tmp_path / "net.config", "--json")
    data = json.loads(stdout)
    net = Network(Architecture.from_string(data["architecture"]))
    assert code == 0 and (data["layers"], data["macs"], data["params"]) == (len(net.layers), net.macs, net.params)


# ---- malformed configs: one line, exit 2 ----

def _broken(change) -> dict:
    config = copy.deepcopy(ofa_config())
    change(config)
    return config


BROKEN = {
    "no first_conv": (lambda c: c.pop("first_conv"), "no 'first_conv'"),
    "a 5x5 stem": (lambda c: c["first_conv"].update(kernel_size=5), "3x3 stride-2"),
    "blocks not a list": (lambda c: c.update(blocks={}), "'blocks' must be a non-empty list"),
    "a broken chain": (lambda c: c["blocks"][3]["conv"].update(in_channels=32), "blocks[3].conv: in_channels 32"),
    "stride 3": (lambda c: c["blocks"][1]["conv"].update(stride=3), "stride 3"),
    "a kernel as text": (lambda c: c["blocks"][1]["conv"].update(kernel_size="3"), "kernel_size must be an integer"),
    "an unknown layer": (lambda c: c["blocks"][1]["conv"].update(name="ResNetBottleneckBlock"), "not one latprof imports"),
    "swish": (lambda c: c["blocks"][1]["conv"].update(act_func="swish"), "act_func 'swish'"),
    "an odd mid width": (lambda c: c["blocks"][1]["conv"].update(mid_channels=68), "mid_channels 68"),
    "identity across a stride": (lambda c: c["blocks"][1].update(shortcut=_identity(16, 24)), "identity shortcut"),
    "a pool shortcut": (lambda c: c["blocks"][2].update(shortcut={"name": "PoolingLayer"}), "IdentityLayer or null"),
    "12 channels": (lambda c: [c["blocks"][1]["conv"].update(out_channels=12), c["blocks"][2].update(shortcut=None),
                               c["blocks"][2]["conv"].update(in_channels=12)], "multiples of 8"),
    "a classifier of the wrong width": (lambda c: c["classifier"].update(in_features=960), "in_features 960"),
    "a relu head after an h-swish stem": (lambda c: c["final_expand_layer"].update(act_func="relu"), "one activation"),
    "no head": (lambda c: [c.pop("final_expand_layer"), c.pop("feature_mix_layer")], "no 'feature_mix_layer'"),
    "not an object": (lambda c: c.update(first_conv=[3, 16]), "first_conv must be an object"),
}


@pytest.mark.parametrize("name", BROKEN)
def test_malformed_config_is_one_line(tmp_path, name):
    change, hint = BROKEN[name]
    (tmp_path / "net.config").write_text(json.dumps(_broken(change)))
    code, stdout, stderr = invoke("arch", "import", tmp_path / "net.config", "-o", tmp_path / "out.arch")
    lines = stderr.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("latprof: error: "), stderr
    assert hint in lines[0] and str(tmp_path / "net.config") in lines[0] and "Traceback" not in stdout + stderr
    assert not (tmp_path / "out.arch").exists()


@pytest.mark.parametrize("text, hint", [("{not json", "not a JSON net.config"), ("[1, 2]", "must be an object"),
                                        ("", "not a JSON net.config")])
def test_not_a_config_is_one_line(tmp_path, text, hint):
    (tmp_path / "net.config").write_text(text)
    code, _, stderr = invoke("arch", "import", tmp_path / "net.config")
    assert code == 2 and len(stderr.splitlines()) == 1 and hint in stderr


def test_missing_file_is_one_line(tmp_path):
    code, _, stderr = invoke("arch", "import", tmp_path / "none.config")
    assert code == 2 and "no such file" in stderr and len(stderr.splitlines()) == 1


def test_arch_import_does_not_import_tensorflow(tmp_path, python_executable, cli_env):
    (tmp_path / "net.config").write_text(json.dumps(proxyless_config()))
    code = ("import sys\nfrom latprof.cli import main\ntry:\n    main(['arch', 'import', sys.argv[1]])\n"
            "except SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'\n")
    result = subprocess.run([python_executable, "-c", code, str(tmp_path / "net.config")], capture_output=True,
                            text=True, env=cli_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("res224_w1_stem32_head1280_cls1000:r1_k3_s11_e1_i32_o16,")
