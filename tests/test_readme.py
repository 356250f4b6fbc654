"""The README's tour runs as written: every shell block between `<!-- tour -->` and
`<!-- /tour -->`, in order, in one shell, against a live service on a database of
its own (as the first command leaves it: the default program, the development admin
key). Every call must succeed (`call` stops on anything but 2xx)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import scratch_database
from tests.pgcluster import free_port
from tests.support import wait_ready

ROOT = Path(__file__).resolve().parent.parent


def tour() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- tour -->(.*?)<!-- /tour -->", readme, re.DOTALL)
    assert found is not None, "README.md has no tour"
    blocks = re.findall(r"```sh\n(.*?)```", found.group(1), re.DOTALL)
    assert len(blocks) >= 5
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    with scratch_database("readme") as url:
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("LEDGER_")}
        env |= {"LEDGER_DATABASE_URL": url, "LEDGER_ADMIN_KEY": "dev-admin", "LEDGER_ACCESS_LOG": "false"}
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.asgi:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            yield base
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def test_the_tour_runs_top_to_bottom(service: str) -> None:
    assert shutil.which("curl"), "the tour uses curl"
    script = "set -euo pipefail\n" + tour()
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**os.environ, "L": service},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    # A few answers, to know the calls did what the tour says.
    assert '"kind":"reversal"' in result.stdout
    assert '"order_id":"o-20261108-0001"' in result.stdout
    assert '"status":"captured"' in result.stdout
    assert '"code":"gold"' in result.stdout
