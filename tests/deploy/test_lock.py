"""The locked install: requirements-dev.lock and requirements.lock hold every package of the environment,
pinned with hashes, at versions their inputs (requirements-dev.txt, requirements.txt) allow; the runtime
lock is the dev lock's subset; and `deploy/lock.sh check`, which `make lint` runs, fails on a stale lock."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK_SCRIPT = ROOT / "deploy" / "lock.sh"
INPUTS = ("requirements.txt", "requirements-dev.txt", "requirements.lock", "requirements-dev.lock")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _inputs(name: str) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


def _locked(name: str) -> dict[str, tuple[Version, int]]:
    """Each locked package: its version and how many hashes it carries."""
    found: dict[str, tuple[Version, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", (ROOT / name).read_text()):
        pin = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", block)
        if pin:
            found[_canonical(pin.group(1))] = (Version(pin.group(2)), block.count("--hash=sha256:"))
    return found


@pytest.mark.parametrize("lock, inputs", [("requirements.lock", ["requirements.txt"]),
                                          ("requirements-dev.lock", ["requirements.txt", "requirements-dev.txt"])])
def test_every_input_is_locked_with_hashes_at_a_version_it_allows(lock, inputs):
    locked = _locked(lock)
    assert len(locked) > 150  # the whole environment, Airflow's own dependencies included
    unhashed = sorted(name for name, (_, hashes) in locked.items() if hashes == 0)
    assert not unhashed, f"locked without a hash: {unhashed}"
    for requirement in (r for name in inputs for r in _inputs(name)):
        version, _ = locked[_canonical(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), f"{requirement} but locked {version}"
    assert "apache-airflow-core" in locked and "apache-airflow-task-sdk" in locked


def test_the_runtime_lock_is_the_dev_locks_versions():
    dev, runtime = _locked("requirements-dev.lock"), _locked("requirements.lock")
    assert set(runtime) <= set(dev)
    differ = {name: (str(version), str(dev[name][0])) for name, (version, _) in runtime.items()
              if version != dev[name][0]}
    assert not differ, f"runtime and dev locks disagree: {differ}"
    assert not {"pytest", "playwright", "ruff"} & set(runtime)  # the image gets no test tool


@pytest.fixture(scope="module")
def uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert found, "uv is not installed beside this Python (make setup installs it)"
    return found


def _check(folder: Path, uv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(LOCK_SCRIPT), "check", str(folder)], capture_output=True, text=True,
                          env={**os.environ, "UV": uv}, timeout=300)


def test_the_lock_check_passes_on_the_committed_files_and_fails_on_a_moved_pin(tmp_path, uv):
    for name in INPUTS:
        shutil.copy(ROOT / name, tmp_path / name)
    done = _check(tmp_path, uv)
    assert done.returncode == 0, done.stderr
    requests_pin = next(str(r.specifier) for r in _inputs("requirements.txt") if r.name == "requests")
    runtime = (tmp_path / "requirements.txt").read_text()
    (tmp_path / "requirements.txt").write_text(runtime.replace(f"requests{requests_pin}", "requests==2.34.0"))
    done = _check(tmp_path, uv)
    assert done.returncode == 1
    assert "requirements.lock does not match" in done.stderr and "+requests==2.34.0" in done.stderr
    assert (tmp_path / "requirements.lock").read_text() == (ROOT / "requirements.lock").read_text()  # untouched
