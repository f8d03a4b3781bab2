"""Real `redis-server` and PostgreSQL on free loopback ports in temp dirs, and app clusters using them.

Both come from the Debian packages (`redis-server`, `postgresql`); tests that need them are marked
`redis`/`postgres` and skip when the binaries are missing. PostgreSQL refuses to run as root, so
as root it runs as the `postgres` user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from testbed.harness import FAST_ENV, AppProcess, free_port

__all__ = [
    "PostgresServer",
    "RedisServer",
    "leader_of",
    "metric",
    "needs_postgres",
    "needs_redis",
    "pg_bin",
    "postgres_server",
    "redis_server",
    "run_cluster",
    "sockets_of",
    "start_app",
    "start_on_shared_port",
    "wait_for",
    "wait_for_async",
]

PG_DIRS = (
    "/usr/local/bin",
    "/usr/lib/postgresql/17/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/15/bin",
)


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class RedisServer:
    """A `redis-server` without persistence; `kill()` and `start()` again keep the same port."""

    directory: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
            ],
            stdout=(self.directory / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, 10, self.proc)
        return self

    def kill(self) -> None:
        """Stop it the hard way (no save): its data is gone, as after a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def pg_bin(name: str) -> str | None:
    """Return the path of a PostgreSQL server binary, or None when it is not installed."""
    for directory in PG_DIRS:
        path = Path(directory) / name
        if path.exists():
            return str(path)
    return shutil.which(name)


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster (trust auth on loopback) in `directory`; `fsync=False` for speed."""

    directory: Path
    port: int = 0
    fsync: bool = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) are not installed")
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        data = self.directory / "data"
        self._run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(self.directory / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            f"-c fsync={'on' if self.fsync else 'off'}",
            "start",
        )
        _wait_for_port(self.port, 30)
        return self

    def stop(self) -> None:
        pg_ctl = pg_bin("pg_ctl")
        if pg_ctl is not None and (self.directory / "data" / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run(pg_ctl, "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    """Run a redis-server for the duration of the block."""
    server = RedisServer(directory).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def postgres_server(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """Run a PostgreSQL server in a fresh temp dir (reachable by the `postgres` user) for the block."""
    directory = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    server = PostgresServer(directory, fsync=fsync)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------- app clusters

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


needs_postgres = pytest.mark.skipif(
    pg_bin("initdb") is None or pg_bin("pg_ctl") is None, reason="PostgreSQL binaries are not installed"
)


def start_app(base: Path, name: str, env: dict[str, str]) -> AppProcess:
    """Start one app process with its own data dir under `base`."""
    data_dir = base / name
    data_dir.mkdir(parents=True, exist_ok=True)
    return AppProcess(port=free_port(), data_dir=data_dir, env={**FAST_ENV, **env}).start()


@contextlib.contextmanager
def run_cluster(base: Path, redis_url: str, count: int, **env: str) -> Iterator[list[AppProcess]]:
    """Start `count` app processes sharing `redis_url` under a fresh key prefix; stop them after."""
    shared = {"REDIS_URL": redis_url, "REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}", **env}
    apps: list[AppProcess] = []
    try:
        for i in range(count):
            apps.append(start_app(base, f"p{i}", shared))
        yield apps
    finally:
        for app in apps:
            app.stop()


def metric(app: AppProcess, name: str, labels: str = "") -> float | None:
    """Return one sample of the app's /metrics, or None when absent or the app does not answer."""
    try:
        text = httpx.get(f"{app.http}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([0-9.eE+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy; return it, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")


async def wait_for_async(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """The async twin of `wait_for` (the predicate runs in a thread: it may block on HTTP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s")


def leader_of(apps: list[AppProcess]) -> AppProcess | None:
    """Return the one app that reports `hub_leader 1`, or None while there is none (or several)."""
    leaders = [
        app
        for app in apps
        if app.proc is not None and app.proc.poll() is None and metric(app, "hub_leader") == 1.0
    ]
    return leaders[0] if len(leaders) == 1 else None


# ---------------------------------------------------------------- one port, several processes


def _tcp_inodes(port: int, state: str) -> set[str]:
    # /proc/net/tcp{,6}: local address is field 1 (hex ip:port), state field 3 (0A listen, 01
    # established), inode field 9.
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    inodes.add(fields[9])
    return inodes


def sockets_of(pid: int, port: int, state: str = "01") -> int:
    """Count `pid`'s TCP sockets on local `port` in `state` (01 established, 0A listening)."""
    inodes = _tcp_inodes(port, state)
    count = 0
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    count += 1
    return count


def start_on_shared_port(base: Path, name: str, port: int, env: dict[str, str]) -> AppProcess:
    """Start an app process with REUSE_PORT=1 on `port`, returning once that process itself listens.

    `AppProcess.start()` alone would return as soon as any process on the port answers /health.
    """
    data_dir = base / name
    data_dir.mkdir(parents=True, exist_ok=True)
    app = AppProcess(port=port, data_dir=data_dir, env={**FAST_ENV, **env, "REUSE_PORT": "1"})
    app.start()
    proc = app.proc
    assert proc is not None

    def listening() -> int:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}:\n{app.log()[-6000:]}")
        return sockets_of(proc.pid, port, "0A")

    try:
        wait_for(listening, 180)
    except TimeoutError:
        app.stop()
        raise
    return app
