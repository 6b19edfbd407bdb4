"""The application's database role: the credentials the application (Lambdas, Locust, scenarios) logs in
with, where they are kept, and the endpoint it connects to; plus where the seed's datasets live.

Seeding creates the role; everything that only *uses* it imports this module instead of the seed.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path

from harness.endpoints import PostgresEndpoint, Secret, StackEndpoints, write_private_file

DEFAULT_APP_ROLE = "dbunit_app"
APP_CREDENTIALS_FILE = "app_role.json"
DATA_SUBDIR = "data"


class AppRoleError(RuntimeError):
    """The application role's credentials are missing or unreadable; the message says what to do."""


def app_credentials(stack: StackEndpoints, state_dir: Path, *, create: bool = True) -> tuple[str, Secret]:
    """The application role and its password.

    When the proxy endpoint logs in with a role of its own (as RDS Proxy logs in with the application's
    role), that role and password are used. Otherwise the seed owns them: `dbunit_app` with a random
    password kept in `<state_dir>/app_role.json` (mode 0600), created on first use if `create`.
    """
    if stack.proxy.user != stack.direct.user:
        return stack.proxy.user, stack.proxy.password
    path = state_dir / APP_CREDENTIALS_FILE
    if path.exists():
        try:
            raw = json.loads(path.read_text())
            return str(raw["role"]), Secret(str(raw["password"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise AppRoleError(f"{path} is unreadable ({exc}): delete it and run `harness seed --force`") from None
    if not create:
        raise AppRoleError(f"no application role credentials in {path}: run `harness seed` first")
    password = secrets.token_urlsafe(24)
    write_private_file(path, json.dumps({"role": DEFAULT_APP_ROLE, "password": password}) + "\n")
    return DEFAULT_APP_ROLE, Secret(password)


def app_endpoint(stack: StackEndpoints, state_dir: Path, *, via_proxy: bool = True) -> PostgresEndpoint:
    """Where the application connects: the proxy (default) or the server directly, as the app role."""
    role, password = app_credentials(stack, state_dir, create=False)
    return dataclasses.replace(stack.proxy if via_proxy else stack.direct, user=role, password=password)


def data_root(state_dir: Path) -> Path:
    """Where datasets (queries, ground truth) live: one subdirectory per dataset key."""
    return state_dir / DATA_SUBDIR
