"""A PgBouncer of the test's own, in transaction pooling mode, in front of a
PostgreSQL server (the shared one on 5432 by default).

Its ini, auth file and log go into a temporary folder; it listens on a free port
of 127.0.0.1 only (no Unix socket) and runs in the foreground as a child process,
stopped by its own PID. PgBouncer refuses to run as root: as root, it is started
with `-u postgres` (the folder is handed to that user). Debian's package also
installs a system service on port 6432; this never touches it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.pgcluster import free_port

INSTALL = "apt-get install -y pgbouncer (.ci/run installs it)"


def binary() -> str | None:
    """The pgbouncer executable: on PATH, or where Debian puts it (/usr/sbin is not
    on every user's PATH)."""
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None


class PgBouncer:
    """One pgbouncer process: pool_mode=transaction, auth_type=trust (the user must
    still be listed in the auth file), `pool_size` server connections per database
    and user, and `connect_query` run on each new server connection. With
    `round_robin`, each transaction takes the server connection idle the longest
    (`server_round_robin`; by default the one idle the shortest), so that one
    client's consecutive transactions run on different server connections, as they
    may whenever other clients share the pool."""

    def __init__(
        self,
        *,
        server_host: str = "127.0.0.1",
        server_port: int = 5432,
        user: str = "postgres",
        pool_size: int = 2,
        connect_query: str | None = None,
        round_robin: bool = False,
    ) -> None:
        found = binary()
        if found is None:
            raise RuntimeError(f"pgbouncer is not installed: {INSTALL}")
        self.binary = found
        self.port = free_port()
        self.user = user
        self.root = Path(tempfile.mkdtemp(prefix="points-ledger-pgbouncer-"))
        self.log = self.root / "pgbouncer.log"
        server = f"host={server_host} port={server_port}"
        if connect_query is not None:
            assert "'" not in connect_query
            server += f" connect_query='{connect_query}'"
        (self.root / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = {server}\n"
            "\n[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            f"admin_users = {user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "reserve_pool_size = 0\n"
            "max_client_conn = 500\n"
            f"server_round_robin = {int(round_robin)}\n"
            f"logfile = {self.log}\n"
        )
        self._run_as: str | None = None
        if os.geteuid() == 0:
            self._run_as = "postgres"
            entry = pwd.getpwnam(self._run_as)
            for path in (self.root, *self.root.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        command = [self.binary]
        if self._run_as is not None:
            command += ["-u", self._run_as]
        command.append(str(self.root / "pgbouncer.ini"))
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        raise RuntimeError(f"pgbouncer did not listen on {self.port} in 15 s:\n{self.log_tail()}")

    def admin(self, command: str) -> list[dict[str, str]]:
        """A SHOW command on PgBouncer's admin console (simple query protocol only,
        so through psql), as rows of column name to value."""
        psql = shutil.which("psql")
        assert psql is not None, "psql is needed to read PgBouncer's admin console"
        connect = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", "pgbouncer", "-w"]
        output = subprocess.run(
            [psql, *connect, "--no-psqlrc", "-A", "-F", "\t", "-c", command],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.splitlines()
        header, *rows = [line.split("\t") for line in output if line and not line.startswith("(")]
        return [dict(zip(header, row, strict=True)) for row in rows]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def pgbouncer(
    *, pool_size: int = 2, connect_query: str | None = None, round_robin: bool = False
) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(pool_size=pool_size, connect_query=connect_query, round_robin=round_robin)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
