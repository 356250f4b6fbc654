"""How long the app's router takes to find the route of a request: every included
router is tried in turn (app.http.ApiRouter skips those whose prefix or first
segment cannot match). Prints microseconds per match for a few paths, median of
five rounds.

    uv run python -m bench.routing
"""

from __future__ import annotations

import statistics
import time

from starlette.routing import Match

from app.config import Settings
from app.main import create_app

PATHS = [
    ("POST", "/v1/members/m-1/awards"),
    ("POST", "/v1/orders"),
    ("GET", "/v1/members/m-1/statement"),
    ("POST", "/v1/partner/orders"),
]


def main() -> None:
    app = create_app(Settings(database_url="postgresql+asyncpg://unused@127.0.0.1:1/unused"))
    for method, path in PATHS:
        rounds = []
        for _ in range(5):
            count = 5_000
            began = time.perf_counter()
            for _ in range(count):
                scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
                for route in app.router.routes:
                    if route.matches(scope)[0] == Match.FULL:
                        break
            rounds.append((time.perf_counter() - began) / count * 1e6)
        print(f"{method:5s} {path:32s} {statistics.median(rounds):6.1f} us per match")


if __name__ == "__main__":
    main()
