"""Process helpers every stack uses: where things are, a free port, waiting for a condition."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


NO_SERVERS = "CHARTSYNC_TEST_NO_SERVERS"  # set by make test-fast


def server_allowed(what: str) -> None:
    """Refuse to start ``what`` in a run that promised none (make test-fast): the test needs the
    ``server`` marker (conftest adds it to tests that use a server fixture)."""
    if os.environ.get(NO_SERVERS):
        raise RuntimeError(f"make test-fast starts no server, yet a test started {what}: mark it `server`")
