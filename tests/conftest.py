"""Shared fixtures: a private model cache, cheap measurement settings, and one small profiling run
(with the LUT built from it) that the profiling, LUT and CLI tests share.

Nothing may be written to the home folder: the conversion cache, Keras' and matplotlib's config
folders all point into a temporary sandbox, set here before anything imports TensorFlow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

# pytest-xdist's workers inherit the sandbox of the process that started them, so that a model is
# converted once per test run, not once per worker; only that process removes it.
_OWNER = "LATPROF_TEST_SANDBOX" not in os.environ
_SANDBOX = Path(os.environ.setdefault("LATPROF_TEST_SANDBOX", tempfile.mkdtemp(prefix="latprof-tests-")))
for _name, _sub in (("LATPROF_CACHE", "latprof-cache"), ("KERAS_HOME", "keras"), ("MPLCONFIGDIR", "mpl")):
    (_SANDBOX / _sub).mkdir(exist_ok=True)
    os.environ[_name] = str(_SANDBOX / _sub)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Loopback phones (tests/loopback): a private adb server and phones served by a device-side adbd.
from loopback.fixtures import adb_server, phone, phone_factory  # noqa: E402, F401

from latprof.arch import Architecture  # noqa: E402
from latprof.convert import ModelCache  # noqa: E402
from latprof.devices import DeviceConfig, HostDevice, HostSettings  # noqa: E402
from latprof.network import Network  # noqa: E402

# Stem, one block and the head at 64x64, half width: seven ops, all cheap to convert and time.
TINY_ARCH = "res64_w0.5:r1_k3_s11_e1_i32_o16"
# A few more ops from the first layers of a real network, so the run is not one network only.
EXTRA_ARCH = "mobilenetv2:res96_w0.5"
EXTRA_OPS = 4


def pytest_sessionfinish(session, exitstatus):
    if _OWNER:
        shutil.rmtree(_SANDBOX, ignore_errors=True)


@pytest.fixture(scope="session")
def model_cache() -> ModelCache:
    """The one model cache of the test run, which the CLI's subprocesses use too."""
    from latprof.convert import default_cache_dir

    return ModelCache(default_cache_dir())


@pytest.fixture(scope="session")
def fast_settings() -> HostSettings:
    return HostSettings(rounds=3, warmup_runs=2, min_seconds=0.1, max_rounds=3)


@pytest.fixture(scope="session")
def host_device(fast_settings) -> HostDevice:
    """The host with the default method, in-network."""
    return HostDevice(DeviceConfig(), fast_settings)


@pytest.fixture(scope="session")
def isolated_device(fast_settings) -> HostDevice:
    """The host timing single-op models (method isolated)."""
    return HostDevice(DeviceConfig(method="isolated"), fast_settings)


@pytest.fixture(scope="session")
def tiny_arch_text() -> str:
    return TINY_ARCH


@pytest.fixture(scope="session")
def tiny_arch() -> Architecture:
    return Architecture.from_string(TINY_ARCH)


@pytest.fixture(scope="session")
def extra_specs():
    """A few ops of MobileNetV2 that the tiny arch does not hold: the shared run times them alone."""
    return list(Network(Architecture.from_string(EXTRA_ARCH)).ops)[:EXTRA_OPS]


@pytest.fixture(scope="session")
def profiled_specs(tiny_arch, extra_specs):
    """The specs of the shared run: every op of the tiny arch plus a few of MobileNetV2's."""
    return list(dict.fromkeys([*Network(tiny_arch).ops, *extra_specs]))


@pytest.fixture(scope="session")
def tiny_model(tiny_arch, model_cache) -> Path:
    """The tiny arch as .tflite."""
    from latprof.convert import ensure_architectures

    return Path(ensure_architectures([tiny_arch], "float32", model_cache)[tiny_arch.to_string()])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_arch, tiny_model, extra_specs, host_device, model_cache):
    """A finished in-network run folder and the summary of the profile that made it (do not modify
    it): the tiny arch profiled whole, and a few ops it does not hold timed alone and calibrated."""
    from latprof.profiling import profile

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    summary = profile(host_device, run_dir, model_cache, networks={tiny_arch.to_string(): tiny_model}, specs=extra_specs,
                      request={"test": "tiny"})
    return run_dir, summary


@pytest.fixture(scope="session")
def tiny_lut_path(tmp_path_factory, tiny_run) -> Path:
    from latprof.lut import build_lut

    path = tmp_path_factory.mktemp("luts") / "tiny_lut.json"
    build_lut([tiny_run[0]]).save(path)
    return path


@pytest.fixture
def run_copy(tmp_path, tiny_run) -> Path:
    """A private copy of the shared run folder, free to modify."""
    return Path(shutil.copytree(tiny_run[0], tmp_path / "run_copy"))


@pytest.fixture(scope="session")
def edit_provenance():
    """Change provenance fields in a run folder's run.json, as another setup would have written it."""
    import json

    def edit(run_dir: Path, **fields) -> None:
        path = run_dir / "run.json"
        run = json.loads(path.read_text())
        run["provenance"].update(fields)
        path.write_text(json.dumps(run))

    return edit


def latprof_executable() -> str:
    """The installed console script, next to this interpreter."""
    found = shutil.which("latprof", path=os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))
    assert found, "the latprof console script is not installed (pip install -e .)"
    return found


@pytest.fixture(scope="session")
def cli_env(model_cache) -> dict:
    """The CLI's environment: the tests' one model cache, so nothing is converted twice."""
    return dict(os.environ)


@pytest.fixture(scope="session")
def run_cli(cli_env):
    """Run the real ``latprof`` console script; returns the CompletedProcess."""
    executable = latprof_executable()

    def run(*args, cwd=None, timeout=180) -> subprocess.CompletedProcess:
        return subprocess.run([executable, *map(str, args)], capture_output=True, text=True, env=cli_env,
                              cwd=cwd, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def python_executable() -> str:
    return sys.executable
