# Common commands; each is a plain `uv run ...` you can also type yourself.
.PHONY: serve test lint fmt revision bench

serve:  ## the service on 127.0.0.1:8000, with its runtime dependencies only (embedded PostgreSQL unless LEDGER_DATABASE_URL is set)
	LEDGER_ADMIN_KEY=$${LEDGER_ADMIN_KEY:-dev-admin} uv run --no-dev points-ledger serve

test:  ## the test suite (the README's test command)
	uv run pytest

lint:  ## what CI checks besides the tests
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
	uv run lint-imports

fmt:  ## format and fix what ruff can
	uv run ruff format .
	uv run ruff check --fix .

revision:  ## a migration revision with frozen copies of the changed app/sql/ objects: make revision m="what changed"
	@test -n "$(m)" || (echo 'usage: make revision m="what changed"' >&2; exit 2)
	uv run python migrations/new_revision.py "$(m)"

bench:  ## the awards benchmark (needs wrk)
	uv run python -m bench.awards
