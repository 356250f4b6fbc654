"""A webhook receiver for points-ledger: checks each delivery's signature with the
Standard Webhooks library, ignores a delivery it has already handled (deliveries are
at least once: the same `webhook-id` may come again), and answers 204 at once.

    WEBHOOK_SECRET=whsec_... uv run python examples/webhook_receiver.py   # listens on 127.0.0.1:9000

Answer 2xx quickly and do the work afterwards: no 2xx within 15 s is a failure and
is retried. A 410 tells the service to stop sending here for good. A consumer that
must not miss anything also keeps the last `sequence` it handled and, after an
outage or on a gap, reads GET /v1/events?after=<that sequence>.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = os.environ["WEBHOOK_SECRET"]
PORT = int(os.environ.get("PORT", "9000"))
seen: set[str] = set()  # a real receiver keeps these in its database, with what it did


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        try:
            # checks the signature (any of the space-separated ones: during a secret
            # rotation two are sent) and that the timestamp is within 5 minutes
            event = Webhook(SECRET).verify(body, dict(self.headers))
        except WebhookVerificationError as exc:
            self.send_response(400)
            self.end_headers()
            print(f"refused: {exc}", flush=True)
            return
        self.send_response(204)
        self.end_headers()
        if event["id"] in seen:
            return
        seen.add(event["id"])
        print(f"{event['sequence']} {event['type']} {json.dumps(event['data'])[:120]}", flush=True)

    def log_message(self, *_: object) -> None:  # one line per event above is enough
        pass


if __name__ == "__main__":
    print(f"listening on http://127.0.0.1:{PORT}/", flush=True)
    HTTPServer(("127.0.0.1", PORT), Receiver).serve_forever()
