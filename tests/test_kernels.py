"""The generic kernel space: seeded, inside its caps, reaching the corners the MnasNet space lacks,
and every kind converting to exactly its op with the real converter and profiling from the CLI."""

from __future__ import annotations

import json
import math

from latprof.convert import ensure_models
from latprof.kernels import MAX_ELEMENTS, MAX_MACS, MIX, sample_kernels
from latprof.space import get_space


def test_the_same_seed_draws_the_same_distinct_kernels():
    first, again, other = sample_kernels(300, 0), sample_kernels(300, 0), sample_kernels(300, 1)
    assert [s.key for s in first] == [s.key for s in again]
    assert len({s.key for s in first}) == 300
    assert {s.key for s in first} != {s.key for s in other}


def test_every_kind_is_drawn_within_the_caps():
    specs = sample_kernels(300, 0)
    assert {s.op for s in specs} == set(MIX)
    assert all(s.macs <= MAX_MACS for s in specs)
    assert all(sum(map(math.prod, s.inputs)) + math.prod(s.output) <= MAX_ELEMENTS for s in specs)
    assert max(s.macs for s in specs) > MAX_MACS / 4  # the caps bound the draws, not a narrow range


def test_kernels_reach_what_the_search_space_lacks():
    """The corners keras.applications networks have and MnasNet's space does not."""
    space_keys = {s.key for s in get_space("mnasnet").unique_ops()}
    specs = sample_kernels(400, 0)
    assert sum(s.key in space_keys for s in specs) < 10
    convs = [s for s in specs if s.op == "CONV_2D"]
    assert any(s.inputs[0][:2] == (1, 1) and s.inputs[0][2] >= 512 for s in convs)  # a head on a 1x1 map
    assert any(s.inputs[0][2] == 3 and s.stride == 2 for s in convs)  # an image stem
    assert any(s.kernel == 7 for s in convs) and any(min(s.inputs[0][2], s.output[2]) < 12 for s in convs)


def test_each_kind_converts_to_exactly_its_op(model_cache):
    """One kernel of each kind through the real converter, which checks the file holds that op alone."""
    first = {}
    for spec in sample_kernels(200, 3):
        first.setdefault(spec.op, spec)
    assert ensure_models(list(first.values()), "float32", model_cache, workers=1) == {}


def test_profile_kernels_from_the_cli(run_cli, tmp_path):
    """Kernels are single-op models; timed isolated here, so that the run needs no networks to
    calibrate by (in-network runs of specs alone: tests/test_profiling.py)."""
    out = tmp_path / "kernels"
    result = run_cli("profile", "--kernels", "3", "--seed", "5", "--method", "isolated", "-o", out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["measured_now"] == summary["requested"] == 3 and not summary["unsupported"]
    records = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    assert {s.key for s in sample_kernels(3, 5)} <= {r["key"] for r in records}
    assert not any("network" in r or "context" in r for r in records)
    run = json.loads((out / "run.json").read_text())
    assert run["requests"][-1]["kernels"] == 3 and run["provenance"]["method"].startswith("isolated/")
