"""The README's commands work as written: every verb and option it uses exists in the CLI, and its
cheap commands run for real through the installed ``latprof`` console script.

Commands are read from the README's fenced ```bash blocks (one command a line, ``&&`` splits
commands, ``#`` starts a comment).  Paths the README assumes (a LUT built by ``latprof lut
build``) are replaced with the tests' shared tiny LUT; nothing is profiled or measured here.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
QUICKSTART = ["python3 -m pip install -e . && latprof demo -o runs/demo",
              "python3 -m pip install -e '.[test]' && python3 -m pytest -q -n auto"]
GROUPS = ("lut", "predictor", "arch")  # verbs whose commands are subverbs


def fenced_blocks(text: str, language: str) -> list[str]:
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S) if m.group(1) == language]


def command_lines(block: str) -> list[str]:
    """Non-empty lines without their comments, continuation lines joined."""
    lines = block.replace("\\\n", " ").splitlines()
    return [line for line in lines if shlex.split(line, comments=True)]


def commands(text: str | None = None) -> list[list[str]]:
    """Every command of every bash block (of the README by default), as argv lists."""
    found = []
    for block in fenced_blocks(README if text is None else text, "bash"):
        for line in command_lines(block):
            tokens = shlex.split(line, comments=True)
            while tokens:
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                found.append(tokens[:cut])
                tokens = tokens[cut + 1:]
    return found


def latprof_commands() -> list[list[str]]:
    return [argv[1:] for argv in commands() if argv and argv[0] == "latprof"]


def verb_of(args: list[str]) -> tuple[str, ...]:
    return tuple(args[:2]) if args[0] in GROUPS else (args[0],)


def options_of(args: list[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in args if arg.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", arg)}


def substitute(args: list[str], paths: dict[str, str]) -> list[str]:
    return [paths.get(arg, arg) for arg in args]


def without_option(args: list[str], option: str) -> list[str]:
    """args less ``option VALUE``."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        else:
            out.append(arg)
    return out


def find_command(verb: tuple[str, ...], must_have: str) -> list[str]:
    matches = [args for args in latprof_commands() if verb_of(args) == verb and must_have in args]
    assert matches, f"the README has no 'latprof {' '.join(verb)}' command with {must_have}"
    return matches[0]


def test_the_readme_is_at_most_12_kb():
    assert len(README.encode()) <= 12_000


def test_quickstart_is_exactly_the_two_commands():
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = fenced_blocks(section, "bash")
    assert len(blocks) == 1, "the Quickstart has one bash block"
    lines = [line.strip() for line in command_lines(blocks[0])]
    assert lines == QUICKSTART


def test_the_parser_reads_the_readme():
    assert len(latprof_commands()) >= 25
    verbs = {verb_of(args) for args in latprof_commands()}
    for verb in [("demo",), ("check",), ("profile",), ("lut", "build"), ("predict",), ("validate",), ("zoo",),
                 ("predictor", "train"), ("search",), ("export",), ("devices",), ("lut", "import"), ("lut", "export")]:
        assert verb in verbs, f"the README never shows 'latprof {' '.join(verb)}'"


def test_every_verb_and_option_in_the_readme_exists(run_cli):
    by_verb: dict[tuple[str, ...], set[str]] = {}
    for args in latprof_commands():
        by_verb.setdefault(verb_of(args), set()).update(options_of(args))
    for verb, options in sorted(by_verb.items()):
        result = run_cli(*verb, "--help", timeout=60)
        assert result.returncode == 0, f"latprof {' '.join(verb)} --help: {result.stderr}"
        assert f"Usage: latprof {' '.join(verb)}" in result.stdout
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", result.stdout), \
                f"latprof {' '.join(verb)} has no option {option}"


def test_no_removed_timing_methods_or_diary():
    assert not re.search(r"\bv(6|7|8|9|10)\b|op-method|sample_eviction|\bday [0-9]", README)
    assert "--method in-network" in README and "--method isolated" in README


def test_zoo_list_and_the_names_the_readme_uses(run_cli):
    assert ["zoo", "--list"] in latprof_commands()
    listed = run_cli("zoo", "--list", timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 28  # one line a model, "(cached)" or not
    names = [arg for args in latprof_commands() if args[0] == "zoo" for arg in args[1:]
             if not arg.startswith("-") and "/" not in arg]
    assert names, "the README writes zoo models by name"
    named = run_cli("zoo", "--list", *names, timeout=60)  # the names parse (nothing is converted)
    assert named.returncode == 0, named.stderr
    assert [line.split()[0] for line in named.stdout.splitlines()] == names


def test_lut_show_of_the_readme(run_cli, tiny_lut_path):
    args = find_command(("lut", "show"), "runs/host.lut.json")
    result = run_cli(*substitute(args, {"runs/host.lut.json": tiny_lut_path}), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "method: in-network/1" in result.stdout


def test_predict_of_reference_names_as_in_the_readme(run_cli, tiny_lut_path, tiny_arch_text):
    """The README's predict line, with the tiny LUT (no predictor): every target parses, those the
    LUT cannot cover are reported incomplete with their missing ops, a covered one gets a latency."""
    args = find_command(("predict",), "mobilenetv2")
    args = without_option(substitute(args, {"runs/host.lut.json": str(tiny_lut_path)}), "--predictor")
    targets = [arg for arg in args[1:args.index("--lut")]]
    assert "mobilenetv2" in targets and "mnasnet-a1" in targets
    result = run_cli(*args, tiny_arch_text, "--json", timeout=60)
    assert result.returncode == 1, result.stderr  # incomplete predictions: exit 1, no error
    assert "latprof: error" not in result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == len(targets) + 1
    for row in rows[:-1]:
        assert row["latency_ms"] is None and row["missing"]
    assert rows[-1]["latency_ms"] > 0 and not rows[-1]["missing"]


def test_python_snippet_runs(python_executable, cli_env, tiny_lut_path, tmp_path):
    blocks = fenced_blocks(README, "python")
    assert len(blocks) == 1
    code = blocks[0].replace("runs/demo/lut.json", str(tiny_lut_path))
    assert code != blocks[0], "the snippet loads the demo's LUT"
    result = subprocess.run([python_executable, "-c", code], capture_output=True, text=True, env=cli_env,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith("None ['") and first.endswith("[None, None]")  # the tiny LUT lacks their ops: no guess
    assert float(second) == pytest.approx(0.75 * 1.2 ** -0.07)


def test_accuracy_table_points_at_the_benches():
    section = README.split("## Accuracy", 1)[1].split("\n## ", 1)[0]
    assert "<!-- figures: docs/results.md -->" in section.split("|", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|") and "---" not in line][1:]
    scripts = [re.search(r"`python (bench/\w+\.py)`", row) for row in rows]
    assert all(scripts) and len(rows) == 5
    assert {m.group(1) for m in scripts} == {f"bench/{name}.py" for name in (
        "host_accuracy", "zoo_accuracy", "predictor_accuracy", "space_profile", "phone_loopback")}
    for m in scripts:
        assert (ROOT / m.group(1)).is_file()
    results = [row.split(" | ")[2] for row in rows]
    assert all("±10%" in cell and re.search(r"\d%", cell) for cell in results), results


def test_results_py_writes_the_results_page_and_the_readme_table_from_bench_json(tmp_path):
    """What the README's table and docs/results.md say is what the benches' JSON holds."""
    repeats = [{"within_10_pct": 98.0, "within_5_pct": 90.0, "unpaced_within_10_pct": 70.0, "reference_drift_pct": 1.2,
                "profile_s": 60.0}]
    figures = {"within_10_pct": 91.0, "within_5_pct": 64.0, "mape_pct": 5.0}
    benches = {
        "host_accuracy": {"summary": {"within_10_pct": "98.00"}, "repeats": repeats},
        "zoo_accuracy": {"summary": {**figures, "models": 33, "reference_drift_pct": 2.8,
                                     "within_10_pct_vs_profiled": 88.0}},
        "predictor_accuracy": {"summary": {"held_out_ops": {"mape_pct": 22.5},
                                           "networks_lut_plus_predictor": figures}},
        "space_profile": {"summary": {"wall time (min)": 6.4}, "accuracy": {**figures, "networks": 30,
                                                                             "reference_drift_pct": -2.4}},
        "phone_loopback": {"accuracy": {**figures, "networks": 5, "reference_drift_pct": -1.7}}}
    (tmp_path / "json").mkdir()
    for name, data in benches.items():
        (tmp_path / "json" / f"{name}.json").write_text(json.dumps({"command": f"python bench/{name}.py", **data}))
    readme = tmp_path / "README.md"
    readme.write_text(README)
    done = subprocess.run([sys.executable, ROOT / "docs" / "results.py", "--input", tmp_path / "json",
                           "-o", tmp_path / "results.md", "--readme", readme], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = readme.read_text().split("<!-- figures: docs/results.md -->", 1)[1]
    assert "1 repeats, within ±10% / ±5%: 98/90%; reference drift +1%; unpaced within ±10%: 70%" in table
    assert "33 models: 91% within ±10%, 64% within ±5%, MAPE 5%" in table and "profiled variants" in table
    assert "6.4 min; 30 other networks: 91% within ±10%" in table and "5 networks: 91% within ±10%" in table
    assert readme.read_text().split("<!-- figures", 1)[0] == README.split("<!-- figures", 1)[0]
    page = (tmp_path / "results.md").read_text()
    assert all(f"## {name}" in page for name in benches) and "| profile_s |" in page


@pytest.mark.parametrize("path", ["docs/timing.md", "lut/FORMAT.md", "device_scripts/README.md"])
def test_documents_the_readme_points_to_exist(path):
    assert path in README
    assert (ROOT / path).is_file()
