"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 (or ::1) that records
every request and answers with the status codes a test scripts. With `tls`, it speaks
HTTPS with a certificate for `rebind.test` signed by the tests' own CA (tls/ca.pem;
the CA's key was thrown away once it had signed)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TLS = Path(__file__).parent / "tls"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes


class Receiver:
    def __init__(self, address: str = "127.0.0.1", *, tls: bool = False) -> None:
        self.received: list[Received] = []
        self.server_names: list[str | None] = []  # the TLS SNI of each handshake
        self.answers: list[int] = []  # next status codes; 204 once they run out
        self.delays: list[float] = []  # seconds to wait before the next answers; none once they run out
        self.released = threading.Event()  # cleared: every request is held (unanswered) until set
        self.released.set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with receiver.lock:
                    receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.answers.pop(0) if receiver.answers else 204
                    delay = receiver.delays.pop(0) if receiver.delays else 0.0
                receiver.released.wait(timeout=30)
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting (a timeout the test scripted)

            def log_message(self, *_: object) -> None:
                pass

        server_class = ThreadingHTTPServer
        if ":" in address:

            class ServerV6(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            server_class = ServerV6
        self.address = address
        self.server = server_class((address, 0), Handler)
        self.tls = tls
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(TLS / "receiver.pem", TLS / "receiver.key")
            context.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/hooks"

    def ids(self) -> set[str]:
        """The webhook-ids that arrived (each event once, however often it came)."""
        with self.lock:
            return {request.headers["webhook-id"] for request in self.received}

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    try:
        yield found
    finally:
        found.close()
