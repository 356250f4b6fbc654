"""bench.profile's reading of py-spy's raw output: inclusive shares of the app's functions."""

from __future__ import annotations

from bench.profile import shares

_TOP = "<module> (uvicorn/main.py:1);handle (app/http.py:10)"
RAW = "\n".join(
    [
        f"{_TOP};place (app/orders/service.py:20);member_facts (app/orders/repository.py:30) 6",
        f"{_TOP};place (app/orders/service.py:21);place (app/orders/service.py:40) 3",
        "<module> (uvicorn/main.py:1);run (asyncio/base_events.py:5) 1",
        # another package's app/ folder, and a path that only contains "app/"
        "x (/venv/lib/site-packages/other/app/x.py:1);y (/srv/webapp/y.py:2) 2",
    ]
)


def test_each_function_counts_once_a_sample_and_only_the_apps() -> None:
    total, found = shares(RAW)
    assert total == 12
    assert dict(found) == {
        "handle (app/http.py)": 9 / 12,
        # on the stack twice in one sample (recursion, two lines): counted once
        "place (app/orders/service.py)": 9 / 12,
        "member_facts (app/orders/repository.py)": 6 / 12,
    }
    assert [name for name, _ in found][-1] == "member_facts (app/orders/repository.py)"


def test_no_samples_is_no_shares() -> None:
    assert shares("") == (0, [])
