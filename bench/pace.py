"""A constant-rate (open-loop) load generator over HTTP/1.1 keep-alive connections.

wrk sends the next request when the previous one answered, so a slow answer
slows the load down and hides itself (coordinated omission). Here requests are
due at fixed instants (`rate` per second); each one's latency counts from the
instant it was due, so time spent waiting for a free connection counts too.
Every request is built by the caller (each order needs its own order_id and
Idempotency-Key, which `hey -q` cannot vary). Only 127.0.0.1 is ever targeted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Paced:
    rate: float
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # answers other than 2xx, and broken connections
    late: int = 0  # requests that could not start within a second of their instant

    @property
    def achieved(self) -> float:
        return len(self.latencies_ms) / self.seconds


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def run(
    port: int, rate: float, seconds: float, connections: int, make_request: Callable[[], bytes]
) -> Paced:
    """Send `rate` requests a second for `seconds` to 127.0.0.1:`port`, over
    `connections` keep-alive connections; each request's bytes come from
    `make_request()` (with Host and Content-Length already in them)."""
    loop = asyncio.get_running_loop()
    result = Paced(rate, seconds)
    due: asyncio.Queue[float | None] = asyncio.Queue()

    async def produce() -> None:
        start = loop.time() + 0.05
        for number in range(int(rate * seconds)):
            instant = start + number / rate
            delay = instant - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait(instant)
        for _ in range(connections):
            due.put_nowait(None)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (instant := await due.get()) is not None:
                if loop.time() - instant > 1.0:
                    result.late += 1
                writer.write(make_request())
                try:
                    status = await _answer(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    result.errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                result.latencies_ms.append((loop.time() - instant) * 1000)
                if not 200 <= status < 300:
                    result.errors += 1
        finally:
            writer.close()

    await asyncio.gather(produce(), *(connection() for _ in range(connections)))
    return result


def request_bytes(method: str, path: str, port: int, headers: dict[str, str], body: bytes) -> bytes:
    """An HTTP/1.1 keep-alive request, ready to send."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
