"""Starting, probing and stopping local server processes, by PID, with errors a person can act on."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import psutil

T = TypeVar("T")


class ServiceError(RuntimeError):
    """A service could not be started, probed or stopped; the message says what to do."""


class MissingBinaryError(ServiceError):
    pass


class PortBusyError(ServiceError):
    pass


class ServiceNotReadyError(ServiceError):
    pass


def find_binary(name: str, install_hint: str, extra_dirs: Sequence[Path] = ()) -> Path:
    for directory in extra_dirs:
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    # Debian installs pgbouncer in /usr/sbin, which a non-root PATH often lacks.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if not found:
        raise MissingBinaryError(f"{name} not found on PATH or in /usr/sbin. {install_hint}")
    return Path(found)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Without SO_REUSEADDR a port in TIME_WAIT would look busy although a server can bind it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the kernel's choice), for an instance started on demand."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def ensure_port_free(port: int, service: str, setting: str) -> None:
    if port_is_free(port):
        return
    holder = ""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                holder = f" (held by PID {conn.pid}: {' '.join(psutil.Process(conn.pid).cmdline())[:120]})"
                break
    except (psutil.Error, OSError):
        pass
    env_name = "HARNESS_" + setting.upper()
    raise PortBusyError(
        f"port {port} for {service} is already in use on 127.0.0.1{holder}. Stop whatever holds it, "
        f"or choose another port: {env_name}=<port> or `{setting} = <port>` in harness.toml."
    )


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in tail) if tail else f"(log {path} is empty)"


@dataclass(frozen=True)
class ProcessRecord:
    """What identifies a process we started: its PID and start time (guards against PID reuse)."""

    name: str
    pid: int
    create_time: float
    command: list[str]

    def process(self) -> psutil.Process | None:
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def is_alive(self) -> bool:
        return self.process() is not None


class PidFiles:
    """One JSON record per started service under <state>/run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def write(self, record: ProcessRecord) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path(record.name).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(self.path(record.name))

    def read(self, name: str) -> ProcessRecord | None:
        try:
            data = json.loads(self.path(name).read_text())
            return ProcessRecord(data["name"], int(data["pid"]), float(data["create_time"]), list(data["command"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def all(self) -> list[ProcessRecord]:
        if not self.run_dir.exists():
            return []
        records = [self.read(p.stem) for p in sorted(self.run_dir.glob("*.json"))]
        return [r for r in records if r is not None]


@dataclass(kw_only=True)
class LocalService:
    """What every locally started service shares: where it listens and logs, its readiness deadline, its
    PID record, liveness, and a stop by PID.

    Subclasses are keyword-only dataclasses that add their own fields and set `name` (the record's name),
    `stop_signal` (the server's own fast, clean shutdown) and `stop_timeout_s`. Example:

        @dataclass(kw_only=True)
        class MemcachedService(LocalService):
            name: ClassVar[str] = "memcached"
            memory_mb: int

            def start(self) -> None:
                ensure_port_free(self.port, "memcached", "memcached_port")
                command = ["memcached", "-l", self.host, "-p", str(self.port), "-m", str(self.memory_mb)]
                record = spawn(self.name, command, self.log_path)
                self.pids.write(record)
                wait_until_ready(record, self._probe, timeout_s=self.timeout_s, log_path=self.log_path, what="cache")
    """

    name: ClassVar[str]
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_timeout_s: ClassVar[float] = 10.0
    log_path: Path
    port: int
    pids: PidFiles
    timeout_s: float
    host: str = "127.0.0.1"

    def start(self) -> object:
        """Start the process and return once its readiness probe answers (or raise with its log tail)."""
        raise NotImplementedError(f"{type(self).__name__} must say how it starts")

    def record(self) -> ProcessRecord | None:
        return self.pids.read(self.name)

    def is_running(self) -> bool:
        record = self.record()
        return record is not None and record.is_alive()

    def stop(self) -> bool:
        """Stop the process and forget its record; True if it was running."""
        record = self.record()
        if record is None:
            return False
        stopped = stop_process(record, sig=self.stop_signal, timeout_s=self.stop_timeout_s)
        self.pids.remove(self.name)
        return stopped


def spawn(
    name: str,
    command: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    preexec: Callable[[], None] | None = None,
) -> ProcessRecord:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # A session of its own: the process survives the CLI that started it, and stop() can signal
        # the whole group so no child is orphaned.
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec,
        )
    try:
        create_time = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        create_time = time.time()
    # Popen's handle is dropped on purpose: the record, not this object, owns the process from here.
    proc.returncode = 0
    return ProcessRecord(name=name, pid=proc.pid, create_time=create_time, command=list(command))


def wait_until_ready(
    record: ProcessRecord,
    probe: Callable[[], T],
    *,
    timeout_s: float,
    log_path: Path,
    what: str,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call probe until it returns, the process dies, or the deadline passes.

    Polling backs off from 20 ms to 500 ms; every failure path reports the probe's last error and the
    tail of the service's log, which is where the real reason usually is. The deadline is read from `now`
    and the pauses taken with `sleep` (the system's, or a virtual clock in tests).
    """
    deadline = now() + timeout_s
    interval = 0.02
    last_error: BaseException | None = None
    while True:
        if not record.is_alive():
            raise ServiceNotReadyError(
                f"{what} exited during start-up (PID {record.pid}). Last lines of {log_path}:\n{log_tail(log_path)}"
            )
        try:
            return probe()
        except Exception as exc:
            last_error = exc
        if now() >= deadline:
            raise ServiceNotReadyError(
                f"{what} did not become ready within {timeout_s:.0f} s (last probe error: {last_error}). "
                f"Last lines of {log_path}:\n{log_tail(log_path)}"
            )
        sleep(interval)
        interval = min(interval * 2, 0.5)


def stop_process(record: ProcessRecord, *, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> bool:
    """Signal the process, wait for it, then kill its whole group if it lingers. True if it was running."""
    proc = record.process()
    if proc is None:
        return False
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(sig)
    # psutil's wait() counts a zombie as alive, and the init process here reaps orphans only every
    # couple of seconds; a zombie has released its ports and memory, so it counts as stopped.
    deadline = time.monotonic() + timeout_s
    while record.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_group(record.pid)
    return True


def kill_group(pgid: int) -> None:
    """SIGKILL every process of a group (a service's session) and wait until none is left alive."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _group_has_live_members(pgid):
        time.sleep(0.02)


def _group_has_live_members(pgid: int) -> bool:
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


@dataclass(kw_only=True)
class HttpService(LocalService):
    """A local service spoken to over HTTP (the AWS emulator, the Lambda runtime)."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
