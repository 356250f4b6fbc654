"""/metrics: every worker's counters together under `serve --workers N`, and a
bearer token when LEDGER_METRICS_TOKEN is set."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from app.config import Environment, Settings
from app.main import create_app
from tests.pgcluster import free_port
from tests.support import BOOTSTRAP_KEY, wait_ready


@pytest.fixture
async def guarded(migrated_database: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        env=Environment.test, admin_key=SecretStr(BOOTSTRAP_KEY), metrics_token=SecretStr("scrape-me")
    )
    application = create_app(settings, database_url=migrated_database)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
            yield client


async def test_a_metrics_token_is_required_when_set(guarded: httpx.AsyncClient) -> None:
    assert (await guarded.get("/metrics")).status_code == 401
    wrong = await guarded.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "unauthorized")
    right = await guarded.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert right.status_code == 200
    assert "points_ledger_http_request_duration_seconds" in right.text


def _healthz_count(text: str) -> float:
    found = re.search(
        r"points_ledger_http_request_duration_seconds_count"
        r'\{method="GET",route="/healthz",status="200"\} (\S+)',
        text,
    )
    return 0.0 if found is None else float(found.group(1))


def test_metrics_add_up_every_worker(migrated_database: str) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LEDGER_", "PROMETHEUS_"))}
    env |= {"LEDGER_DATABASE_URL": migrated_database, "LEDGER_ENV": "test", "LEDGER_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "serve", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        sent = 40
        for _ in range(sent):  # a fresh connection each: the kernel spreads them over both workers
            assert httpx.get(f"{base}/healthz").status_code == 200
        scrapes = [_healthz_count(httpx.get(f"{base}/metrics").text) for _ in range(6)]
        # the workers' chainers (serve runs them by default) report the chain's lag
        # and the outbox's depth
        deadline = time.monotonic() + 20
        while True:
            text = httpx.get(f"{base}/metrics").text
            if "points_ledger_chain_lag_seconds " in text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=30)
    assert scrapes == [float(sent)] * 6
    assert re.search(r"^points_ledger_chain_lag_seconds \S+$", text, re.MULTILINE), text[-2000:]
    assert re.search(r"^points_ledger_outbox_depth \S+$", text, re.MULTILINE)
