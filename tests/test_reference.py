"""The steadiness check: the first reference network timed again and again, on the host and
through the CLI (its phone path is in test_phone.py)."""

from __future__ import annotations

import re

import pytest

from latprof.reference import DRIFT_WARNING_PCT, REFERENCE_NETWORKS, Steadiness, check_steadiness


@pytest.mark.parametrize("latencies, spread, steady", [((10_000, 10_200, 10_100), 2.0, True),
                                                       ((10_000, 11_000, 10_500), 10.0, False)])
def test_steadiness_is_the_slowest_timing_over_the_fastest(latencies, spread, steady):
    result = Steadiness(REFERENCE_NETWORKS[0], latencies, 3.0)
    assert result.spread_pct == spread and result.steady is steady
    data = result.to_dict()
    assert data["name"] == "mobilenetv2" and data["timings"] == 3 and data["tolerance_pct"] == DRIFT_WARNING_PCT
    assert data["median_ms"] == latencies[2] / 1000 and data["min_ms"] == 10.0 and data["max_ms"] == latencies[1] / 1000


def test_check_times_the_reference_network_until_the_time_is_up(host_device, model_cache):
    seen = []
    result = check_steadiness(host_device, model_cache, "float32", seconds=1.0, progress=seen.append)
    assert result.target == REFERENCE_NETWORKS[0]
    assert len(result.latencies_us) >= 3 and len(seen) == len(result.latencies_us)
    assert result.seconds >= 1.0 and seen == sorted(seen)
    assert all(x > 0 for x in result.latencies_us)
    assert result.spread_pct == round(100 * (max(result.latencies_us) / min(result.latencies_us) - 1), 1)
    assert result.steady is (result.spread_pct <= DRIFT_WARNING_PCT)


def test_check_cli_reports_the_spread_and_its_verdict(run_cli):
    """The text the CLI prints (its figures are the in-process check's, above; each run of the CLI
    takes seconds of timing, so one is enough)."""
    done = run_cli("check", "--seconds", "1")
    assert done.returncode == 0, done.stderr
    first, verdict = done.stdout.splitlines()
    found = re.fullmatch(r"mobilenetv2 timed (\d+) times in \d+ s on host: median [\d.]+ ms, from ([\d.]+) to "
                         r"([\d.]+) ms \(([\d.]+)% apart\)", first)
    assert found, first
    assert int(found[1]) >= 3 and float(found[2]) <= float(found[3])
    steady = float(found[4]) <= DRIFT_WARNING_PCT
    assert verdict.startswith("steady: " if steady else "not steady: ")
    assert steady or "profile when the device is idle" in verdict
