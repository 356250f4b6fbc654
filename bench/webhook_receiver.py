"""The webhook receiver bench/events.py delivers to: answers every POST with 204 at
once (no signature check, no work) and remembers when each event first arrived;
GET /stats tells what arrived. Run it like the bare endpoint:

    uv run uvicorn bench.webhook_receiver:app --host 127.0.0.1 --port 8714
"""

from __future__ import annotations

import json
import time
from datetime import datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# webhook-id -> (arrival, wall clock seconds; the body), the first arrival of each event
first: dict[str, tuple[float, bytes]] = {}
posts = 0


async def receive(request: Request) -> Response:
    global posts
    body = await request.body()
    arrived = time.time()
    posts += 1
    first.setdefault(request.headers["webhook-id"], (arrived, body))
    return Response(status_code=204)


async def stats(request: Request) -> JSONResponse:
    """How many POSTs and events arrived, and with ?details=1 each event's first
    arrival (wall clock) and its time from its created_at to then (seconds; bodies
    are read only then, so polling stays cheap)."""
    details = request.query_params.get("details") == "1"
    arrivals = [arrived for arrived, _ in first.values()] if details else []
    latencies = (
        [
            arrived - datetime.fromisoformat(json.loads(body)["created_at"]).timestamp()
            for arrived, body in first.values()
        ]
        if details
        else []
    )
    return JSONResponse(
        {
            "posts": posts,
            "events": len(first),
            "arrivals": arrivals,
            "latencies": latencies,
        }
    )


async def healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/", receive, methods=["POST"]),
        Route("/stats", stats),
        Route("/healthz", healthz),
    ]
)
