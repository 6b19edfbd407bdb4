"""Locust Users for the unit's services: PostgreSQL (a psycopg_pool pool, through the proxy or direct),
Redis and Lambda, as abstract bases a locustfile subclasses with its tasks.

Every call is timed with `perf_counter` and fired as Locust's request event, the one the user was handed
(`environment.events.request`); an exception is a failed request in Locust's statistics, never a crash of
the user, and the call returns None. Modelled on Locust's examples/custom_xmlrpc_client.

gevent: Locust runs users as greenlets, so a client that blocks the process stalls every user. psycopg 3
picks how it waits for the server when it is imported: its C wait function when `select` is unpatched,
which blocks the whole process, and a pure-Python poll that gevent makes cooperative when gevent has
patched first. Locust patches when `locust` is imported, and this module imports it before anything that
imports psycopg; the check below refuses to load if psycopg got in first anyway, instead of letting every
query serialise the run. `PSYCOPG_WAIT_FUNC=wait_select` makes queries cooperate whatever the order, but not
connecting, which goes through the selector psycopg bound at import: that case loads with a warning.
redis-py and botocore use plain sockets, which gevent patches.
"""

from __future__ import annotations

import json
import logging
import selectors
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gevent import monkey
from locust import User
from locust.env import Environment

from harness.app.gdpr_invoke import Invocation, invoke
from harness.locustusers.plugin import harness_run
from harness.locustusers.run import AccountedFailure

Labels = Mapping[str, str | int | float]


def psycopg_cooperates() -> bool:
    """True when psycopg's query waits yield to other greenlets."""
    import psycopg.waiting as waiting

    return monkey.is_module_patched("select") and waiting.wait in (waiting.wait_poll, waiting.wait_select)


def psycopg_connects_cooperatively() -> bool:
    """True when opening a connection yields too: psycopg bound gevent's selector, having been imported after
    gevent patched."""
    import psycopg.waiting as waiting

    return getattr(waiting, "DefaultSelector", None) is selectors.DefaultSelector


if not psycopg_cooperates():
    raise ImportError(
        "psycopg was imported before gevent patched the standard library, so every query would block all "
        "Locust users: import locust before anything that imports psycopg (the `locust` command does), or set "
        "PSYCOPG_WAIT_FUNC=wait_select"
    )
if not psycopg_connects_cooperatively():
    logging.getLogger("harness.locust").warning(
        "psycopg was imported before gevent patched: its queries cooperate (PSYCOPG_WAIT_FUNC), but opening a "
        "connection blocks every user while it lasts; import locust before psycopg to fix this"
    )


class LambdaThrottled(AccountedFailure):
    """The invocation was refused for lack of concurrency (429 TooManyRequestsException)."""


class LambdaFunctionError(AccountedFailure):
    """The function failed (FunctionError: Unhandled); Lambda counts it in its Errors metric."""


class UnexpectedAnswer(Exception):
    """The service answered, but not what the request asked for (a handled error, a wrong result)."""


@dataclass
class RequestOutcome:
    value: Any = None
    exception: Exception | None = None
    elapsed_ms: float = 0.0
    response_length: int = 0


@contextmanager
def timed_request(user: User, request_type: str, name: str) -> Iterator[RequestOutcome]:
    """Time the block and fire the user's request event; an exception in the block is the request's failure."""
    outcome = RequestOutcome()
    started = time.perf_counter()
    try:
        yield outcome
    except Exception as exc:  # any client error is a failed request; greenlet kills (BaseException) pass
        outcome.exception = exc
    outcome.elapsed_ms = (time.perf_counter() - started) * 1000
    user.environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=outcome.elapsed_ms,
        response_length=outcome.response_length,
        exception=outcome.exception,
        context=user.context(),
    )


class HarnessUser(User):
    """Base of the harness's users: `self.harness` is the process's HarnessRun (stack, shared clients, tally),
    `self.options` Locust's parsed options (the harness's knobs among them). Subclasses that override
    on_start must call super().on_start()."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.harness = harness_run(environment)

    @property
    def options(self) -> Any:
        return self.environment.parsed_options


class PostgresClient:
    """Statements on the process's connection pool, as the application role."""

    request_type = "postgres"

    def __init__(self, user: HarnessUser) -> None:
        self._user = user

    def execute(
        self,
        name: str,
        query: str,
        params: Any = None,
        *,
        metric: str | None = None,
        labels: Labels | None = None,
        local_settings: Mapping[str, str] | None = None,
    ) -> list[tuple[Any, ...]] | None:
        """Run one statement and return its rows (None when it failed). `metric` also records the latency
        of successes in that harness metric; `local_settings` (e.g. hnsw.ef_search) apply to this statement
        only, in its own transaction, as a session SET would leak to other clients of a transaction pooler."""
        tally = self._user.harness.tally
        pool = self._user.harness.pool()
        with timed_request(self._user, self.request_type, name) as outcome, pool.connection() as conn:
            if local_settings:
                with conn.transaction():
                    for setting, value in local_settings.items():
                        conn.execute("SELECT set_config(%s, %s, true)", (setting, value))
                    cursor = conn.execute(query, params)
                    outcome.value = cursor.fetchall() if cursor.description else []
            else:
                cursor = conn.execute(query, params)
                outcome.value = cursor.fetchall() if cursor.description else []
            # Rows have no wire size at hand; Locust's size column stays 0 for PostgreSQL.
        # Declared once the request has an outcome (success or failure): a request the end of the run
        # interrupted (GreenletExit passes through) was never attempted to completion.
        if metric:
            tally.expect(metric)
        if outcome.exception is None and metric:
            tally.latency(metric, outcome.elapsed_ms, labels)
        rows: list[tuple[Any, ...]] | None = outcome.value
        return rows


class PostgresUser(HarnessUser):
    """`self.pg.execute(name, sql, params)`; the pool opens in on_start, so a database that cannot be
    reached is a failed start (an exception in Locust's report), not a stream of failed requests."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.pg = PostgresClient(self)

    def on_start(self) -> None:
        super().on_start()
        self.harness.pool()


class RedisClient:
    """redis-py's commands, timed: `self.redis.get(key)` is a request of type redis named GET."""

    request_type = "redis"

    def __init__(self, user: HarnessUser) -> None:
        self._user = user
        self._commands: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, command: str) -> Callable[..., Any]:
        timed = self._commands.get(command)
        if timed is None:
            timed = self._commands[command] = self._timed(command)
        return timed

    def _timed(self, command: str) -> Callable[..., Any]:
        method = getattr(self._user.harness.redis(), command)
        name = command.upper()

        def timed(*args: Any, **kwargs: Any) -> Any:
            with timed_request(self._user, self.request_type, name) as outcome:
                outcome.value = method(*args, **kwargs)
                if isinstance(outcome.value, bytes | str):
                    outcome.response_length = len(outcome.value)
            return outcome.value

        return timed


class RedisUser(HarnessUser):
    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.redis = RedisClient(self)


class LambdaClient:
    """Synchronous invocations through the Lambda API, with the REPORT line's figures recorded per function:
    lambda.<function>.duration_ms (Duration, what CloudWatch judges), .billed_duration_ms (what Lambda
    charges), .error_rate_pct and .throttles."""

    request_type = "lambda"

    def __init__(self, user: HarnessUser) -> None:
        self._user = user

    def invoke(self, function: str, payload: Any) -> Invocation | None:
        """The invocation, or None when it failed: throttled, the function failed, or it answered with
        anything but {"ok": true, ...} (the GDPR functions' convention, functions/README.md)."""
        tally = self._user.harness.tally
        prefix = f"lambda.{function}"
        labels = {"source": "locust"}
        client = self._user.harness.lambda_client()
        with timed_request(self._user, self.request_type, function) as outcome:
            invocation = invoke(client, function, payload)
            tally.count(f"{prefix}.throttles", int(invocation.throttled), labels)
            if invocation.throttled:
                raise LambdaThrottled(f"{function}: TooManyRequestsException")
            tally.rate(f"{prefix}.error_rate_pct", int(invocation.function_error is not None), 1, labels)
            if invocation.report is not None:
                tally.latency(f"{prefix}.duration_ms", invocation.report.duration_ms, labels)
                tally.latency(f"{prefix}.billed_duration_ms", invocation.report.billed_duration_ms, labels)
            if invocation.function_error:
                raise LambdaFunctionError(f"{function}: {invocation.function_error}: {invocation.payload}")
            answer = invocation.payload
            if not (isinstance(answer, dict) and answer.get("ok") is True):
                raise UnexpectedAnswer(f"{function} answered {json.dumps(answer)[:300]}")
            outcome.response_length = len(json.dumps(answer))
            outcome.value = invocation
        # After the outcome, as in execute(): an invocation cut off by the end of the run is not counted.
        # A throttled one never ran, so it can only be expected to show up as a throttle.
        tally.expect(f"{prefix}.throttles")
        if not isinstance(outcome.exception, LambdaThrottled):
            tally.expect(f"{prefix}.duration_ms", f"{prefix}.billed_duration_ms", f"{prefix}.error_rate_pct")
        answered: Invocation | None = outcome.value
        return answered


class LambdaUser(HarnessUser):
    """`self.lambdas.invoke(function, payload)`; the boto3 client (slow to build) is made in on_start."""

    abstract = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.lambdas = LambdaClient(self)

    def on_start(self) -> None:
        super().on_start()
        self.harness.lambda_client()
