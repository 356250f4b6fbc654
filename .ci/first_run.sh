#!/usr/bin/env bash
# The README's first command works on a stock machine: run as written (read out of
# the README, between the first-command markers), from a fresh clone, with a fresh
# HOME and package caches, the system's python3 and no uv on PATH (it fails if uv is
# there: the run would not show that the command gets it). It must answer /readyz,
# print at most a handful of lines (5, not counting GET /readyz lines, the bound
# tests/test_serve.py sets for `serve` alone; here the installers' lines count too:
# a newcomer sees them), install the runtime dependencies only (no mypy, ruff,
# hypothesis, pytest...: nothing in the clone's .venv beyond `uv export --no-dev`),
# and stop cleanly on Ctrl+C (SIGINT to its whole process group, as a terminal sends
# it). Only the machine's TLS trust (SSL_CERT_FILE, SSL_CERT_DIR: some networks
# re-sign TLS) passes through.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command=$(awk '/<!-- first-command -->/{found=1; next} found && /^```sh/{inside=1; next} inside && /^```/{exit} inside{print}' "$root/README.md")
[ -n "$command" ] || { echo "no first command found in README.md" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$root" "$work/clone"
mkdir -p "$work/home"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
clean=(env -i HOME="$work/home" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  LANG=C.UTF-8 LEDGER_PORT="$port" ${SSL_CERT_FILE:+SSL_CERT_FILE="$SSL_CERT_FILE"}
  ${SSL_CERT_DIR:+SSL_CERT_DIR="$SSL_CERT_DIR"})
if found=$("${clean[@]}" bash -c 'command -v uv'); then
  echo "uv is on the PATH the first command gets ($found): a stock machine has none," \
    "and this run would not show that the command installs it" >&2
  exit 1
fi
echo "first command: $command"
(
  cd "$work/clone"
  exec setsid "${clean[@]}" bash -c "$command" > "$work/out.log" 2>&1
) &
runner=$!
for _ in $(seq 1 600); do
  if curl -sf "http://127.0.0.1:$port/readyz" > /dev/null 2>&1; then break; fi
  if ! kill -0 "$runner" 2> /dev/null; then echo "the first command exited:" >&2; cat "$work/out.log" >&2; exit 1; fi
  sleep 1
done
curl -sf "http://127.0.0.1:$port/readyz" > /dev/null || { echo "no /readyz after 600 s" >&2; cat "$work/out.log" >&2; exit 1; }
started=$(wc -l < "$work/out.log")
kill -INT -- "-$runner"  # setsid made the runner its group's leader: the whole group, like Ctrl+C
# Every process of the session (uv, the service, its workers) must end by itself.
for _ in $(seq 1 60); do pgrep -s "$runner" > /dev/null || break; sleep 1; done
if pgrep -s "$runner" > /dev/null; then
  echo "still running 60 s after Ctrl+C:" >&2; ps -o pid,comm -s "$runner" >&2; kill -KILL -- "-$runner"; exit 1
fi
status=0; wait "$runner" || status=$?
cat "$work/out.log"
echo "exit status after Ctrl+C: $status"
grep -q " INFO  stopped$" "$work/out.log" || { echo "no 'stopped' line" >&2; exit 1; }
if grep -q "Traceback" "$work/out.log"; then echo "a traceback was printed" >&2; exit 1; fi
if pgrep -f "$work/clone/.points-ledger" > /dev/null; then echo "the embedded PostgreSQL is still running" >&2; exit 1; fi
# The installers' own lines come first; the service's own lines are one per phase.
service_lines=$(grep -c -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$work/out.log" || true)
shown=$(grep -vc "GET /readyz" "$work/out.log" || true)
if [ "$shown" -gt 5 ]; then
  echo "the first command printed $shown lines (not counting GET /readyz): at most 5, as tests/test_serve.py" >&2
  exit 1
fi

# Runtime dependencies only: every distribution in the clone's .venv is in the lock's
# runtime set (read by the uv the command installed, else the caller's).
uv_bin="$work/clone/.tools/bin/uv"
[ -x "$uv_bin" ] || uv_bin=uv
runtime=$(cd "$work/clone" && HOME="$work/home" "$uv_bin" export -q --frozen --no-dev --no-hashes \
  --no-header --no-annotate --no-emit-project --format requirements-txt)
beyond=$("$work/clone/.venv/bin/python" - "$runtime" << 'EOF'
import re
import sys
from importlib.metadata import distributions


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


lines = [line.strip() for line in sys.argv[1].splitlines()]
runtime = {normal(re.split(r"[=<>!~;\[ @]", line, maxsplit=1)[0]) for line in lines if line[:1].isalnum()}
installed = {normal(found.metadata["Name"]) for found in distributions()}
print(" ".join(sorted(installed - runtime - {"points-ledger"})))
EOF
)
if [ -n "$beyond" ]; then
  echo "the clone's .venv holds more than the runtime dependencies: $beyond" >&2
  exit 1
fi
echo "first run: ready after $started lines of output, $service_lines lines from the service," \
  "$shown not counting GET /readyz (at most 5); runtime dependencies only; stopped cleanly"
