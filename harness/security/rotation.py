"""Secrets Manager rotation of a database role's password, in the four steps a rotation Lambda runs.

createSecret puts a new password under AWSPENDING; setSecret makes it the role's password; testSecret logs in
through the proxy with it; finishSecret moves AWSCURRENT to it (the old version becomes AWSPREVIOUS). This is
AWS's single-user strategy: between setSecret and finishSecret the old password no longer works while
AWSCURRENT still holds it, so a client that logs in then must re-read the secret and retry; the rotation
scenario counts what that costs. The password never reaches a log: PostgreSQL is sent its SCRAM verifier,
computed here, not the password (pg_stat_statements keeps utility statements' text).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from harness.endpoints import PostgresEndpoint, Secret

PENDING, CURRENT = "AWSPENDING", "AWSCURRENT"


class RotationError(RuntimeError):
    """A step failed; the message names it. Until finishSecret, AWSCURRENT is untouched."""


@dataclass
class Rotation:
    secret_id: str
    token: str
    # Milliseconds each step took, in order, and when finishSecret completed (time.monotonic()).
    step_ms: dict[str, float] = field(default_factory=dict)
    finished_at: float = 0.0
    username: str = ""


def _current(sm: Any, secret_id: str) -> tuple[str, dict[str, Any]]:
    value = sm.get_secret_value(SecretId=secret_id, VersionStage=CURRENT)
    return str(value["VersionId"]), dict(json.loads(value["SecretString"]))


def create_secret(sm: Any, secret_id: str, token: str) -> dict[str, Any]:
    _, document = _current(sm, secret_id)
    pending = {**document, "password": secrets.token_urlsafe(24)}
    sm.put_secret_value(
        SecretId=secret_id, ClientRequestToken=token, SecretString=json.dumps(pending), VersionStages=[PENDING]
    )
    return pending


def set_secret(admin: PostgresEndpoint, pending: dict[str, Any]) -> None:
    with admin.connect(autocommit=True) as conn:
        verifier = conn.pgconn.encrypt_password(
            pending["password"].encode(), pending["username"].encode(), b"scram-sha-256"
        ).decode()
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(pending["username"]), sql.Literal(verifier))
        )


def test_secret(proxy: PostgresEndpoint, pending: dict[str, Any]) -> None:
    login = dataclasses.replace(proxy, user=pending["username"], password=Secret(pending["password"]))
    with login.connect(autocommit=True, prepare_threshold=None, connect_timeout=10) as conn:
        conn.execute("SELECT 1").fetchone()


def finish_secret(sm: Any, secret_id: str, token: str) -> None:
    current_version, _ = _current(sm, secret_id)
    if current_version != token:
        sm.update_secret_version_stage(
            SecretId=secret_id, VersionStage=CURRENT, MoveToVersionId=token, RemoveFromVersionId=current_version
        )
    sm.update_secret_version_stage(SecretId=secret_id, VersionStage=PENDING, RemoveFromVersionId=token)


def rotate(sm: Any, secret_id: str, admin: PostgresEndpoint, proxy: PostgresEndpoint) -> Rotation:
    """Run the four steps against the secret, the database (as `admin`) and the proxy."""
    rotation = Rotation(secret_id, str(uuid.uuid4()))
    pending: dict[str, Any] = {}

    def step(name: str, run: Any) -> Any:
        began = time.monotonic()
        try:
            result = run()
        except Exception as exc:
            raise RotationError(f"{name} failed for {secret_id}: {type(exc).__name__}: {exc}") from None
        rotation.step_ms[name] = (time.monotonic() - began) * 1000
        return result

    pending = step("createSecret", lambda: create_secret(sm, secret_id, rotation.token))
    rotation.username = str(pending["username"])
    step("setSecret", lambda: set_secret(admin, pending))
    step("testSecret", lambda: test_secret(proxy, pending))
    step("finishSecret", lambda: finish_secret(sm, secret_id, rotation.token))
    rotation.finished_at = time.monotonic()
    return rotation
