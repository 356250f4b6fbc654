"""A private PostgreSQL server for tests that stop, restart or kill it, and a
streaming replica of one.

Never the shared server on 5432: `initdb` into a temporary folder, `pg_ctl` on a
free port of 127.0.0.1, stopped (by its own pg_ctl) and removed at the end. As
root, the server runs as the OS user `postgres` (PostgreSQL refuses to run as root).
A replica is `pg_basebackup -R` of a running one over loopback (initdb's pg_hba
trusts replication connections from 127.0.0.1), started on a free port of its own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], check=True, capture_output=True, text=True).stdout.strip()
        if (Path(out) / "initdb").exists():
            return Path(out)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError("no initdb found: install the PostgreSQL server binaries")
    return Path(candidates[-1]).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateCluster:
    """One PostgreSQL server of the test's own: start, stop, restart, kill."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.bindir = _bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="points-ledger-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.settings = {"fsync": "off", "max_connections": "100", **(settings or {})}
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def _options(self) -> str:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.root),
            **self.settings,
        }
        return " ".join(f"-c {key}={value}" for key, value in settings.items())

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def restart(self, mode: str = "fast") -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            self._options(),
            "-m",
            mode,
            "-w",
            "restart",
        )

    def standby(self) -> PrivateCluster:
        """A streaming replica of this running server, not started yet: a base backup
        over loopback with -R (standby.signal and primary_conninfo written for it)."""
        replica = PrivateCluster(settings=self.settings)
        try:
            replica._run(
                "pg_basebackup",
                "--host=127.0.0.1",
                f"--port={self.port}",
                "--username=postgres",
                f"--pgdata={replica.data}",
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
            )
        except BaseException:
            shutil.rmtree(replica.root, ignore_errors=True)
            raise
        return replica

    def postmaster_pid(self) -> int | None:
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return None
        return int(pidfile.read_text().splitlines()[0])

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_standby(primary: PrivateCluster) -> Iterator[PrivateCluster]:
    """A started streaming replica of `primary` (which must run, and keep running
    while the replica does), stopped and removed at the end."""
    replica = primary.standby()
    try:
        replica.start()
        yield replica
    finally:
        replica.remove()


@contextlib.contextmanager
def private_cluster(*, settings: dict[str, str] | None = None) -> Iterator[PrivateCluster]:
    cluster = PrivateCluster(settings=settings)
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
