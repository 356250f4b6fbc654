"""`points-ledger serve` with no configuration, as a newcomer runs it: a few lines
while it starts, and Ctrl+C (SIGINT to the whole process group, as a terminal
sends it) or SIGTERM stops the service and its embedded PostgreSQL cleanly, with
one line and no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.pgcluster import free_port


def serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")} | {
        "LEDGER_DATA_DIR": str(data_dir),
        "LEDGER_PORT": str(port),
        "LEDGER_ADMIN_KEY": "dev-admin",
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a command started in a terminal
    )


def wait_ready(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("not ready in 90 s")


def postgres_running(data_dir: Path) -> bool:
    found = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, check=False)
    return found.returncode == 0


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_starts_quietly_and_stops_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    port = free_port()
    process = serve(tmp_path / "data", port)
    try:
        wait_ready(port, process)
        assert postgres_running(tmp_path / "data")
        os.killpg(process.pid, stop)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    lines = output.splitlines()
    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert lines[-1].endswith("INFO  stopped"), output
    phases = [line for line in lines if "GET /readyz" not in line]
    assert len(phases) <= 5, output  # embedded server ready, schema, serving (and docs), stopped
    assert any("embedded PostgreSQL ready" in line for line in phases)
    assert any(
        f"serving on http://localhost:{port}; docs at http://localhost:{port}/docs" in line for line in phases
    )
    assert not postgres_running(tmp_path / "data")
