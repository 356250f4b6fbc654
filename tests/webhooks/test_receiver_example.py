"""The README's receiver (examples/webhook_receiver.py) accepts what the service
signs, once per event, and refuses what it did not sign."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI

from app.clock import Clock
from app.config import Settings
from app.webhooks.dispatcher import Dispatcher, signature
from tests.pgcluster import free_port
from tests.support import Api, chain_program

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook_receiver.py"


@pytest.fixture
def port() -> int:
    return free_port()


def start(port: int, secret: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE)],
        env={**os.environ, "WEBHOOK_SECRET": secret, "PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().startswith("listening on")
    return process


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=10)


async def test_the_example_receives_signed_events_once(
    api: Api,
    app: FastAPI,
    db: asyncpg.Connection,
    settings: Settings,
    clock: Clock,
    port: int,
    running: list[subprocess.Popen[str]],
) -> None:
    url = f"http://127.0.0.1:{port}/"
    created = await api.post("/v1/webhooks", {"url": url, "events": ["points.*"]}, idempotency_key=None)
    assert created.status_code == 201, created.text
    receiver = start(port, created.json()["secret"])
    running.append(receiver)
    member = await api.enrol()
    entry = (await api.award(member, 240)).json()
    await chain_program(db, api.program)
    dispatcher = Dispatcher(app.state.context.db, settings, clock)
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()
    assert receiver.stdout is not None
    line = receiver.stdout.readline()
    assert " points.award " in line
    assert entry["id"] in line

    # a forged delivery: signed with another secret
    body = b'{"id": "x", "type": "points.award", "sequence": 1, "data": {}}'
    forged = signature(["whsec_" + "A" * 32], "msg_1", datetime.now(UTC), body.decode())
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(time.time())),
            "webhook-signature": forged,
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
    assert refused.value.code == 400
    assert receiver.stdout.readline().startswith("refused:")
