"""The operating-system account the servers run as.

PostgreSQL (and PgBouncer) refuse to run as root, and CI runs as root. When the harness runs as
root it runs every server as an unprivileged system account; otherwise as the current user.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.services.process import ServiceError


@dataclass(frozen=True)
class ServerUser:
    name: str
    uid: int
    gid: int

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()

    def own(self, *paths: Path) -> None:
        if self.is_current:
            return
        for path in paths:
            os.chown(path, self.uid, self.gid)

    def preexec(self, before_drop: Sequence[Callable[[], None]] = ()) -> Callable[[], None] | None:
        """A Popen preexec_fn: run the hooks (cgroup joins need root), then drop to this account."""
        hooks = list(before_drop)
        if self.is_current and not hooks:
            return None

        def run() -> None:
            for hook in hooks:
                hook()
            if not self.is_current:
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)

        return run

    def make_traversable(self, path: Path) -> list[Path]:
        """Let the account reach `path`: add the search bit to ancestors that deny it. Returns what changed."""
        if self.is_current:
            return []
        changed = []
        for ancestor in reversed(path.resolve().parents):
            mode = ancestor.stat().st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(ancestor, mode | stat.S_IXOTH)
                changed.append(ancestor)
        return changed


def server_user(preferred: str) -> ServerUser:
    """The current user, or (as root) the unprivileged `preferred` account, created if missing."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(preferred)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", preferred],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            raise ServiceError(
                f"running as root, the servers need an unprivileged account and `useradd {preferred}` failed: "
                f"{detail.strip()}. Create the account yourself or set postgres_os_user to an existing one."
            ) from None
        entry = pwd.getpwnam(preferred)
    if entry.pw_uid == 0:
        raise ServiceError(f"postgres_os_user {preferred!r} is root; PostgreSQL refuses to run as root")
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
