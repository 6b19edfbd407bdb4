"""One execution environment: a worker with the function's memory limit and CPU share.

ExecutionEnvironment holds what every kind shares: the worker's environment variables, the frames of INIT
and of each invocation, its log lines. A kind says how the worker starts and stops and how its memory and
CPU are measured: ProcessEnvironment (here) runs it as a process of this machine; ContainerEnvironment
(container.py) as a container the engine sizes. The runtime gets them from an EnvironmentKind, so warm
reuse, concurrency and throttling are one code path for both.

Process environments:

Memory: where cgroups are writable the worker runs in a memory cgroup capped at MemorySize, so the
kernel kills it the moment it exceeds it, as Lambda's sandbox does; elsewhere a sampler thread reads
the worker tree's RSS every few milliseconds and kills it when it passes the limit (a short spike can
slip between samples). Max Memory Used is the cgroup's peak for the invocation (or the sampled peak).

CPU: the worker's cgroup gets a CFS quota of MemorySize/1769 of one CPU once INIT is over (Lambda boosts
CPU during INIT, so a 128 MB function imports boto3 in a fraction of a second, not several). Without
cgroups the share is not enforced and every invocation reports the CPU time it used beside its duration.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from harness.lambda_runtime.protocol import (
    LOG_MARK,
    REPLY_FD_VARIABLE,
    REQUEST_FD_VARIABLE,
    ChannelClosed,
    FrameTimeout,
    read_frame,
    write_frame,
)
from harness.services.cgroups import CgroupLimiter
from harness.services.osuser import ServerUser
from harness.sizing import lambda_vcpu_share

MIB = 1024 * 1024
# On-demand Lambda gives INIT 10 s; past that the environment is discarded and the invoke fails.
INIT_TIMEOUT_S = 10.0
# How long, after a reply, the server waits for the rest of that invocation's log lines.
LOG_DRAIN_S = 2.0
RSS_SAMPLE_INTERVAL_S = 0.005


@dataclass(frozen=True)
class FunctionSpec:
    """What an environment needs to know about the function version it runs."""

    name: str
    arn: str
    handler: str
    runtime: str
    memory_mb: int
    timeout_s: int
    code_dir: Path
    code_sha: str
    variables: dict[str, str]


@dataclass
class Outcome:
    """How one invocation ended, measured by the environment."""

    # "ok", "error" (the handler raised), "timeout", "oom", "crash", "init_error".
    kind: str
    payload: bytes
    duration_ms: float
    max_memory_bytes: int
    cpu_seconds: float
    log_lines: list[str]
    init_duration_ms: float | None = None
    error: dict[str, Any] = field(default_factory=dict)


class EnvironmentFailure(RuntimeError):
    """An environment could not be set up or used; the message says which and why."""


class ExecutionEnvironment:
    """The worker's channel, INIT and invocations; a kind (subclass) starts, measures and stops the worker."""

    # Where the worker finds the function's code and its writable /tmp, as it sees them.
    task_root: str
    tmp_dir: str

    def __init__(self, spec: FunctionSpec, *, env_id: str, work_dir: Path, base_env: dict[str, str]) -> None:
        self.spec = spec
        self.env_id = env_id
        self.work_dir = work_dir
        self.base_env = base_env
        self.log_stream = time.strftime("%Y/%m/%d/", time.gmtime()) + f"[$LATEST]{env_id}"
        self.last_used = time.monotonic()
        self.init_duration_ms: float | None = None
        # What the function printed during INIT; CloudWatch shows it before the first START line.
        self.init_log: list[str] = []
        self._init_reported = False
        self._request_w = -1
        self._reply_r = -1
        self._lines: list[str] = []
        self._lines_lock = threading.Condition()
        self._marks: set[str] = set()
        self._reader: threading.Thread | None = None

    @property
    def memory_limit_bytes(self) -> int:
        return self.spec.memory_mb * MIB

    @property
    def alive(self) -> bool:
        raise NotImplementedError

    # -- what a kind provides ---------------------------------------------------------------------

    def _launch(self, environment: dict[str, str]) -> float:
        """Start the worker with `environment`, set the channel and the log reader up; return the
        perf_counter() at which the worker was started (INIT is measured from there)."""
        raise NotImplementedError

    def _init_done(self) -> None:
        """INIT is over: apply the CPU share (the boost ends)."""

    def _peak_after_init_failure(self) -> int:
        return 0

    def _invocation_begins(self) -> None:
        """Reset the memory high-water marks this kind reads."""

    def _invocation_ends(self, kind: str, reply: dict[str, Any]) -> tuple[str, int, float]:
        """After the exchange: stop the worker if `kind` is timeout or crash, and return the kind (crash
        becomes oom when the worker was killed for memory), the memory peak and the CPU seconds used."""
        raise NotImplementedError

    def kill(self) -> None:
        """Stop the worker and everything it started, and wait for them."""
        raise NotImplementedError

    # -- start (INIT) -----------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        return {
            **self.base_env,
            "LAMBDA_TASK_ROOT": self.task_root,
            "_HANDLER": self.spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{self.spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": self.spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
            "TMPDIR": self.tmp_dir,
            "HOME": self.tmp_dir,
            # The code directory is shared and read-only for the worker.
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            **self.spec.variables,
        }

    def start(self) -> Outcome | None:
        """Start the worker and run INIT. Returns an Outcome only when INIT failed."""
        began = self._launch(self._environment())
        try:
            message = read_frame(self._reply_r, time.monotonic() + INIT_TIMEOUT_S)
        except (FrameTimeout, ChannelClosed) as exc:
            duration = (time.perf_counter() - began) * 1000
            timed_out = isinstance(exc, FrameTimeout)
            self.kill()
            text = (
                f"INIT did not finish within {INIT_TIMEOUT_S:.0f} s"
                if timed_out
                else "Runtime exited during INIT without an error message"
            )
            return self._init_failure(duration, {"errorMessage": text, "errorType": "Runtime.Unknown"})
        self.init_duration_ms = (time.perf_counter() - began) * 1000
        self._wait_for_mark("init")
        if message.get("type") != "ready":
            self.kill()
            return self._init_failure(self.init_duration_ms, message.get("error", {}))
        self.init_log = self._take_lines()
        self._init_done()
        return None

    def _init_failure(self, duration_ms: float, error: dict[str, Any]) -> Outcome:
        return Outcome(
            kind="init_error",
            payload=b"",
            duration_ms=duration_ms,
            max_memory_bytes=self._peak_after_init_failure(),
            cpu_seconds=0.0,
            log_lines=self._take_lines(),
            init_duration_ms=duration_ms,
            error=error,
        )

    # -- logs -------------------------------------------------------------------------------------

    def _start_log_reader(self, fd: int) -> None:
        self._reader = threading.Thread(target=self._read_logs, args=(fd,), daemon=True, name=f"log-{self.env_id}")
        self._reader.start()

    def _read_logs(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lines_lock:
                    if line.startswith(LOG_MARK):
                        self._marks.add(line.removeprefix(LOG_MARK))
                    else:
                        self._lines.append(line)
                    self._lines_lock.notify_all()
        with self._lines_lock:
            self._marks.add("<eof>")
            self._lines_lock.notify_all()

    def _wait_for_mark(self, request_id: str) -> None:
        deadline = time.monotonic() + LOG_DRAIN_S
        with self._lines_lock:
            while request_id not in self._marks and "<eof>" not in self._marks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lines_lock.wait(remaining)
            self._marks.discard(request_id)

    def _take_lines(self) -> list[str]:
        with self._lines_lock:
            lines, self._lines = self._lines, []
        return lines

    def _close_channel(self) -> None:
        for fd in (self._request_w, self._reply_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._request_w = self._reply_r = -1
        if self._reader is not None:
            self._reader.join(timeout=LOG_DRAIN_S)

    # -- invoke -----------------------------------------------------------------------------------

    def invoke(self, request: dict[str, Any]) -> Outcome:
        """Run one invocation; request holds request_id, payload (JSON text) and the context fields."""
        if not self.alive:
            raise EnvironmentFailure("invoke on an environment whose worker is not running")
        request_id = request["request_id"]
        report_init = None if self._init_reported else self.init_duration_ms
        self._init_reported = True
        self._invocation_begins()
        began = time.perf_counter()
        deadline = time.monotonic() + self.spec.timeout_s
        kind, payload, error, reply = "ok", b"", {}, {}
        try:
            write_frame(self._request_w, request)
            reply = read_frame(self._reply_r, deadline)
            if reply["type"] == "result":
                payload = reply["payload"].encode()
            else:
                kind, error = "error", reply["error"]
        except FrameTimeout:
            kind = "timeout"
        except (ChannelClosed, BrokenPipeError):
            kind = "crash"
        duration_ms = (time.perf_counter() - began) * 1000
        kind, peak, cpu_seconds = self._invocation_ends(kind, reply)
        if kind in ("ok", "error"):
            self._wait_for_mark(request_id)
        if kind == "oom":
            # Lambda reports the whole allowance as used when it kills for memory; a sampler may have
            # seen a little more before its kill landed.
            peak = self.memory_limit_bytes
        self.last_used = time.monotonic()
        return Outcome(kind, payload, duration_ms, peak, max(cpu_seconds, 0.0), self._take_lines(), report_init, error)


class ProcessEnvironment(ExecutionEnvironment):
    """A worker process of this machine, in its own cgroup where cgroups are writable."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        env_id: str,
        work_dir: Path,
        base_env: dict[str, str],
        user: ServerUser,
        cgroup: CgroupLimiter | None,
    ) -> None:
        super().__init__(spec, env_id=env_id, work_dir=work_dir, base_env=base_env)
        self.task_root = str(spec.code_dir)
        self.tmp_dir = str(work_dir / "tmp")
        self.user = user
        self.cgroup = cgroup
        self.process: subprocess.Popen[bytes] | None = None
        self._sampler: _RssSampler | None = None
        self._oom_before = 0
        self._cpu_before = 0.0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _launch(self, environment: dict[str, str]) -> float:
        tmp = Path(self.tmp_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        self.user.own(self.work_dir, tmp)
        hooks: list[Callable[[], None]] = []
        if self.cgroup is not None:
            status, join = self.cgroup.apply(self.memory_limit_bytes, lambda_vcpu_share(self.spec.memory_mb))
            if join is None:
                raise EnvironmentFailure(f"could not set up the cgroup for {self.spec.name}: {status.reason}")
            self.cgroup.set_cpu_limit(None)
            hooks.append(join)
        request_r, self._request_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        log_r, log_w = os.pipe()
        began = time.perf_counter()
        environment = {**environment, REQUEST_FD_VARIABLE: str(request_r), REPLY_FD_VARIABLE: str(reply_w)}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "harness.lambda_runtime.worker"],
                stdin=subprocess.DEVNULL,
                stdout=log_w,
                stderr=log_w,
                cwd=self.spec.code_dir,
                env=environment,
                pass_fds=(request_r, reply_w),
                preexec_fn=self.user.preexec(hooks),
                close_fds=True,
            )
        except (OSError, subprocess.SubprocessError):
            os.close(log_r)
            self.kill()
            raise
        finally:
            for fd in (request_r, reply_w, log_w):
                os.close(fd)
        self._start_log_reader(log_r)
        return began

    def _init_done(self) -> None:
        if self.cgroup is not None:
            self.cgroup.set_cpu_limit(lambda_vcpu_share(self.spec.memory_mb))

    def _peak_after_init_failure(self) -> int:
        return self._peak_or(0)

    def _cpu_seconds(self) -> float:
        if self.process is None:
            return 0.0
        try:
            times = psutil.Process(self.process.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system + times.children_user + times.children_system

    def _peak_or(self, fallback: int) -> int:
        peak = self.cgroup.memory_peak_bytes() if self.cgroup is not None else None
        return peak if peak is not None else fallback

    def _invocation_begins(self) -> None:
        assert self.process is not None
        self._sampler = None
        _reset_peak_rss(self.process.pid)
        if self.cgroup is not None:
            self.cgroup.reset_memory_peak()
            self._oom_before = self.cgroup.oom_kills()
        else:
            self._sampler = _RssSampler(self.process.pid, self.memory_limit_bytes)
            self._sampler.start()
        self._cpu_before = self._cpu_seconds()

    def _invocation_ends(self, kind: str, reply: dict[str, Any]) -> tuple[str, int, float]:
        assert self.process is not None
        cpu_seconds = self._cpu_seconds() - self._cpu_before
        peak_rss = _peak_rss_bytes(self.process.pid)
        sampler = self._sampler
        if sampler is not None:
            sampler.stop()
        if kind in ("timeout", "crash"):
            # Lambda discards an environment after a timeout or a runtime exit; the next invoke is cold.
            self.kill(keep_cgroup=True)
            killed_by_kernel = self.cgroup is not None and self.cgroup.oom_kills() > self._oom_before
            if killed_by_kernel or (sampler is not None and sampler.killed_for_memory):
                kind = "oom"
        # The cgroup does not charge pages of shared libraries another process loaded first; Lambda's
        # sandbox counts them, so the worker's own peak RSS is the floor.
        peak = max(self._peak_or(sampler.peak if sampler is not None else 0), peak_rss)
        if kind in ("timeout", "oom", "crash"):
            self._release_cgroup()
        return kind, peak, cpu_seconds

    # -- stop -------------------------------------------------------------------------------------

    def kill(self, keep_cgroup: bool = False) -> None:
        """Kill the worker and anything it started; wait for them; free the cgroup unless asked not to."""
        if self.process is not None:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(self.process.pid)
                for proc in [*parent.children(recursive=True), parent]:
                    with contextlib.suppress(psutil.Error):
                        proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        self._close_channel()
        if not keep_cgroup:
            self._release_cgroup()

    def _release_cgroup(self) -> None:
        if self.cgroup is None:
            return
        # The kernel refuses to remove a group until the killed worker has fully left it.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            self.cgroup.remove()
            if not self.cgroup.exists():
                return
            time.sleep(0.01)


class EnvironmentKind(Protocol):
    """How the runtime gets its execution environments: processes here, or containers (container.py)."""

    # True when the memory limit and the CPU share are applied by the kernel, not sampled or reported.
    enforced: bool
    detail: str

    def prepare(self, envs_dir: Path) -> None:
        """Clear what a killed server left behind and check what environments need, before serving."""

    def new(self, spec: FunctionSpec, env_id: str, work_dir: Path, base_env: dict[str, str]) -> ExecutionEnvironment:
        """An environment not yet started."""
        ...

    def facts(self) -> dict[str, Any]:
        """Added to the runtime's health answer: what the environments are and how they are limited."""
        ...


class ProcessEnvironments:
    """Worker processes, each in its own cgroup where the machine allows (see the module docstring)."""

    def __init__(self, cgroups: str, cgroup_prefix: str, user: ServerUser) -> None:
        # cgroups: "auto": cap each environment with a cgroup where the machine allows; "require": refuse to
        # run without; "off": never (memory is then sampled, CPU not capped).
        self.cgroup_prefix = cgroup_prefix
        self.user = user
        self.cgroup_mode, self.detail = self._cgroup_mode(cgroups)
        self.enforced = bool(self.cgroup_mode)

    def _cgroup_mode(self, cgroups: str) -> tuple[str, str]:
        if cgroups == "off":
            return "", "cgroups = off in configuration: memory is sampled, CPU share not enforced"
        version, reason = CgroupLimiter(f"{self.cgroup_prefix}-probe").detect()
        if not version:
            if cgroups == "require":
                raise RuntimeError(
                    f"cgroups = require, but the Lambda runtime cannot cap environments: {reason}. "
                    "Run as root on a machine with writable cgroups, or set cgroups = auto"
                )
            return "", f"{reason}: memory is sampled, CPU share not enforced (CPU time is reported instead)"
        return version, f"each environment in its own {version} cgroup: memory limit and CPU quota"

    def prepare(self, envs_dir: Path) -> None:
        # Environments of a previous run are gone with their processes; a killed server leaves their
        # (empty) cgroups behind.
        if self.cgroup_mode:
            root = CgroupLimiter(f"{self.cgroup_prefix}-probe").root
            leftovers = {path.name for path in root.glob(f"*/{self.cgroup_prefix}-*")}
            leftovers |= {path.name for path in root.glob(f"{self.cgroup_prefix}-*")}
            for name in leftovers:
                CgroupLimiter(name).remove()
        # Workers run as the unprivileged account with this interpreter, its standard library, the
        # installed packages the functions import and the harness's worker module.
        needed = [
            envs_dir,
            Path(sys.executable).resolve(),
            Path(sysconfig.get_paths()["stdlib"]) / "os.py",
            Path(sysconfig.get_paths()["purelib"]) / "boto3",
            Path(__file__).resolve(),
        ]
        for path in needed:
            for changed in self.user.make_traversable(path):
                print(
                    f"lambda runtime: added the search bit to {changed} so {self.user.name} can reach {path}",
                    file=sys.stderr,
                    flush=True,
                )

    def new(self, spec: FunctionSpec, env_id: str, work_dir: Path, base_env: dict[str, str]) -> ProcessEnvironment:
        cgroup = CgroupLimiter(f"{self.cgroup_prefix}-{env_id[:12]}") if self.cgroup_mode else None
        return ProcessEnvironment(
            spec, env_id=env_id, work_dir=work_dir, base_env=base_env, user=self.user, cgroup=cgroup
        )

    def facts(self) -> dict[str, Any]:
        return {
            "environment_kind": "process",
            "cgroups": {"enforced": self.enforced, "version": self.cgroup_mode, "detail": self.detail},
        }


class _RssSampler:
    """Peak RSS of a process tree, sampled; kills the tree past `limit_bytes` when that is set."""

    def __init__(self, pid: int, limit_bytes: int | None) -> None:
        self.pid = pid
        self.limit_bytes = limit_bytes
        self.peak = 0
        self.killed_for_memory = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"rss-{pid}")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs)
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            if self.limit_bytes is not None and rss > self.limit_bytes:
                self.killed_for_memory = True
                for proc in procs:
                    with contextlib.suppress(psutil.Error):
                        proc.kill()
                return
            self._stop.wait(RSS_SAMPLE_INTERVAL_S)


def _reset_peak_rss(pid: int) -> None:
    """Restart the kernel's high-water mark of the process's RSS (VmHWM), so it measures one invocation."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _peak_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def new_env_id() -> str:
    return secrets.token_hex(16)
