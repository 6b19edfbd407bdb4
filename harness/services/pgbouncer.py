"""PgBouncer in transaction mode: the local stand-in for RDS Proxy."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.endpoints import PostgresEndpoint, Secret, TlsFiles
from harness.services.osuser import ServerUser
from harness.services.process import (
    LocalService,
    ServiceError,
    ensure_port_free,
    find_binary,
    spawn,
    wait_until_ready,
)
from harness.sizing import ProxySizing

NAME = "pgbouncer"
INSTALL_HINT = "Install Debian's package: `apt-get install pgbouncer` (make up does this when run as root)."


def client_tls_params(tls_mode: str, files: TlsFiles | None) -> dict[str, str]:
    """sslmode and sslrootcert of a client of the proxy (any backend's: the CA path is the client's)."""
    if tls_mode == "off" or files is None:
        # Nothing to negotiate: without this libpq would ask for TLS first on every connection.
        return {"sslmode": "disable"}
    return {"sslmode": "verify-full", "sslrootcert": str(files.ca)}


def client_tls_settings(tls_mode: str, files: TlsFiles | None) -> dict[str, str]:
    """pgbouncer.ini's TLS lines for `tls = required | optional | off`; `files` as the server sees them (the
    embedded stack's state directory, or the compose container's mount)."""
    if tls_mode == "off" or files is None:
        return {"client_tls_sslmode": "disable"}
    return {
        "client_tls_sslmode": "require" if tls_mode == "required" else "allow",
        "client_tls_key_file": str(files.key),
        "client_tls_cert_file": str(files.cert),
        "client_tls_ca_file": str(files.ca),
        # TLS 1.2 and 1.3 only, as RDS Proxy.
        "client_tls_protocols": "secure",
        # The hop to PostgreSQL stays on loopback (embedded: the build has no OpenSSL) or on the compose network.
        "server_tls_sslmode": "disable",
    }


@dataclass(kw_only=True)
class PgBouncerService(LocalService):
    name: ClassVar[str] = NAME
    # SIGTERM is PgBouncer's immediate shutdown; SIGINT would wait for clients to go away.
    stop_signal: ClassVar[int] = signal.SIGTERM
    conf_dir: Path
    upstream_port: int
    database: str
    master_user: str
    master_password: Secret
    sizing: ProxySizing
    user: ServerUser
    # "required" (RDS Proxy's Require TLS: plain clients are refused), "optional" or "off"; `tls_files`
    # must be given unless "off".
    tls_mode: str = "off"
    tls_files: TlsFiles | None = None

    def endpoint(self) -> PostgresEndpoint:
        return PostgresEndpoint(
            self.host,
            self.port,
            self.master_user,
            self.master_password,
            self.database,
            **client_tls_params(self.tls_mode, self.tls_files),
        )

    def tls_settings(self) -> dict[str, str]:
        return client_tls_settings(self.tls_mode, self.tls_files)

    def _write_config(self) -> Path:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        userlist = self.conf_dir / "userlist.txt"
        # Only the auth user is listed; every other role (the application's included) is looked up in
        # PostgreSQL through auth_query, as RDS Proxy looks roles up in its secrets.
        userlist.write_text(f'"{self.master_user}" "{self.master_password.reveal()}"\n')
        userlist.chmod(0o600)
        settings = {
            "listen_addr": self.host,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(userlist),
            "auth_user": self.master_user,
            "auth_query": "SELECT usename, passwd FROM pg_shadow WHERE usename=$1",
            "admin_users": self.master_user,
            "stats_users": self.master_user,
            # psycopg sends these at connect; PgBouncer must accept them instead of refusing the client.
            "ignore_startup_parameters": "extra_float_digits,options",
            **self.tls_settings(),
            **self.sizing.pgbouncer_settings(),
        }
        ini = self.conf_dir / "pgbouncer.ini"
        ini.write_text(
            "; Written by the harness from the RDS Proxy defaults; edits are overwritten.\n"
            "[databases]\n"
            f"* = host={self.host} port={self.upstream_port}\n"
            "[pgbouncer]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items())
        )
        ini.chmod(0o600)
        self.user.own(ini, userlist)
        return ini

    def _probe(self) -> dict[str, Any]:
        with self.endpoint().connect(connect_timeout=2, autocommit=True, prepare_threshold=None) as conn:
            conn.execute("SELECT 1").fetchone()
        return {}

    def version(self) -> str:
        binary = find_binary("pgbouncer", INSTALL_HINT)
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout
        first = out.splitlines()[0] if out else ""
        return first.removeprefix("PgBouncer ").strip()

    def start(self) -> None:
        binary = find_binary("pgbouncer", INSTALL_HINT)
        ensure_port_free(self.port, "PgBouncer (RDS Proxy stand-in)", "proxy_port")
        ini = self._write_config()
        record = spawn(NAME, [str(binary), str(ini)], self.log_path, preexec=self.user.preexec())
        self.pids.write(record)
        wait_until_ready(record, self._probe, timeout_s=self.timeout_s, log_path=self.log_path, what="PgBouncer")

    def facts(self) -> dict[str, Any]:
        return {
            "version": self.version(),
            "pool_mode": "transaction",
            "pool_size": self.sizing.pool_size,
            "max_client_conn": self.sizing.max_client_connections,
            "query_wait_timeout_s": self.sizing.connection_borrow_timeout_s,
            "client_idle_timeout_s": self.sizing.idle_client_timeout_s,
            "tls": self.tls_mode,
        }


def retarget(conf_dir: Path, host: str, port: int) -> int:
    """Point the proxy's databases at another server (the connection-string switch after a restore) in its
    config file; the caller reloads the proxy. Returns the port it pointed at before."""
    ini = conf_dir / "pgbouncer.ini"
    lines = ini.read_text().splitlines()
    previous = 0
    for i, line in enumerate(lines):
        if line.startswith("* = host="):
            previous = int(line.rsplit("port=", 1)[1])
            lines[i] = f"* = host={host} port={port}"
    if not previous:
        raise ServiceError(f"{ini} has no '* = host=... port=...' line: was it written by the harness?")
    ini.write_text("\n".join(lines) + "\n")
    return previous
