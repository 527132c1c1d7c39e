"""A throwaway PostgreSQL server on 127.0.0.1 for the tests that need one.

The server binaries come from Debian's ``postgresql`` package (``.ci/run`` installs it). The
data directory is a fresh temporary folder; as root, the server runs as the ``postgres``
user (PostgreSQL refuses to run as root). The server stops and the folder is removed when
the context exits.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the server did not start (with the reason)."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise PostgresUnavailable(
            f"{name} not found: install Debian's postgresql package (apt-get install postgresql)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server(database: str = "kfw") -> Iterator[str]:
    """Start a server; yield a ``postgresql://`` URL of an empty database on it."""
    initdb, pg_ctl, psql = _binary("initdb"), _binary("pg_ctl"), _binary("psql")
    root = Path(tempfile.mkdtemp(prefix="kfw-pg-", dir="/tmp"))
    data, port = root / "data", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PostgresUnavailable(
                "running as root without runuser: cannot start PostgreSQL as 'postgres'"
            )
        as_user = [runuser, "-u", "postgres", "--"]
        root.chmod(0o755)
        shutil.chown(root, "postgres")

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(cmd[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}"
            )

    try:
        run(initdb, "-D", str(data), "-U", "kfw", "--auth=trust", "--no-sync", "-E", "UTF8")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=50"
        )
        run(
            pg_ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        try:
            run(
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "kfw",
                "-d",
                "postgres",
                "-c",
                f"CREATE DATABASE {database}",
            )
            yield f"postgresql://kfw@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run(
                [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=120,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
