"""The harness inside Locust: options, load shapes, exact latencies merged from workers, and the CI gate.

Importing this module (the library's Users do) registers listeners on Locust's events, the way Locust
plugins and locustfiles do:

- options (`init_command_line_parser`): the workload knobs (`--ef-search`, `--k`, `--zipf-s`, ...), the
  load shape (`--shape ramp|spike|soak`), where results go and which thresholds judge them;
- `init`: on the process that judges (a local runner or the master) the thresholds are loaded before any
  load runs, a shape or a default run time is set so every run ends, and the results path is fixed; on a
  process that runs users the stack's endpoints are checked, so a stack that is not up fails at once;
- every request goes into the process's tally (`locust.request_ms`, `locust.failure_rate_pct`); workers
  send their tally with every report to the master (`report_to_master` / `worker_report`);
- `quitting`: the judging process writes the results file, evaluates the thresholds and sets
  `environment.process_exit_code` to the verdict (0 PASS, 3 WARN, 4 FAIL, 5 BROKEN), so
  `locust --headless` gates CI.

Measurements mirror Locust's own statistics: both restart when a test starts or the stats are reset, and
a worker's final report carries both, so the results file holds exactly the requests Locust counted.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import gevent
from locust import events
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.runners import MasterRunner, Runner, WorkerRunner
from locust.shape import LoadTestShape

from harness.config import ConfigError
from harness.data.loading import current_seed
from harness.endpoints import EndpointFileError
from harness.locustusers.cloudwatch import RunPublisher
from harness.locustusers.gate import DEFAULT_THRESHOLD_FILES, judge, judged_thresholds, load_gate_thresholds
from harness.locustusers.run import AccountedFailure, HarnessRun, StackNotUpError
from harness.locustusers.shapes import SHAPES, Profile, ShapeError, ShapeParams, default_run_time_s
from harness.locustusers.tally import RunTotals, Tally
from harness.measure.results import ResultsWriter
from harness.measure.run_facts import machine_facts, run_facts
from harness.report import render_report
from harness.thresholds import ExitCode, ThresholdConfigError, ThresholdSet

logger = logging.getLogger("harness.locust")

# A local runner moves its tally into the run's totals this often, as workers report to the master.
LOCAL_FLUSH_INTERVAL_S = 3.0

# Keyed by environment although the locust command makes one per process: code may build more.
_RUNS: dict[Environment, HarnessRun] = {}
# What the judging process decided at init, for the quitting listener.
_GATES: dict[Environment, _Gate] = {}


def harness_run(environment: Environment) -> HarnessRun:
    """This process's HarnessRun for `environment`, created on first use."""
    run = _RUNS.get(environment)
    if run is None:
        run = _RUNS[environment] = HarnessRun(lambda: environment.parsed_options)
    return run


@dataclass
class _Gate:
    thresholds: ThresholdSet
    results_path: Path
    report_dir: Path | None
    # Workers that reported during the run (at the end, all have quit).
    workers: set[str] = field(default_factory=set)
    # Publishes the unit's CloudWatch metrics while the load runs (a local stack only).
    cloudwatch: RunPublisher | None = None


@events.init_command_line_parser.add_listener
def _add_options(parser: LocustArgumentParser) -> None:
    # On the parser itself, not an argument group: only its add_argument knows include_in_web_ui.
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default=None,
        help="load shape: ramp (5 steps to -u), spike (-u, a burst to --spike-users, back), soak (-u held); "
        "without it, Locust's -u/-r; either way the run ends after -t (default 60 s, soak 30 min)",
    )
    parser.add_argument("--spike-users", type=int, default=0, help="peak users of --shape spike (0: 5 x -u)")
    parser.add_argument(
        "--via", choices=("proxy", "direct"), default="proxy", help="reach PostgreSQL through the proxy or directly"
    )
    parser.add_argument(
        "--cloudwatch",
        action="store_true",
        help="publish the unit's AWS/RDS, RDS Proxy and AWS/ElastiCache metrics to the stack's CloudWatch during the "
        "run (a sampler in a child process) and record them and the dashboards' datapoints in the results; off by "
        "default: on a loaded 2-core host its start-up competed with the measured requests",
    )
    parser.add_argument("--pool-size", type=int, default=20, help="pooled PostgreSQL connections per Locust process")
    parser.add_argument("--ef-search", type=int, default=0, help="hnsw.ef_search per query (0: the server's)")
    parser.add_argument("--k", type=int, default=10, help="neighbours per vector search (recall@10 needs >= 10)")
    parser.add_argument("--zipf-s", type=float, default=1.0, help="Zipf skew of key popularity (0 uniform)")
    parser.add_argument("--audit-batch", type=int, default=20, help="audit events per audit_logging invocation")
    parser.add_argument(
        "--results",
        default=None,
        env_var="HARNESS_RESULTS",
        include_in_web_ui=False,
        help="results file to append to (default: reports/locust-<time>/results.json, also rendered there)",
    )
    parser.add_argument(
        "--report-dir",
        default=None,
        include_in_web_ui=False,
        help="render report.html/md/json and junit.xml here (default: beside a default results file)",
    )
    parser.add_argument(
        "--thresholds",
        action="append",
        default=None,
        include_in_web_ui=False,
        metavar="FILE",
        help="thresholds YAML, repeatable (default: fixtures/thresholds.yaml and fixtures/thresholds-locust.yaml)",
    )
    parser.add_argument(
        "--threshold-override",
        action="append",
        default=[],
        include_in_web_ui=False,
        metavar="FILE",
        help="override file (`overrides:` keyed by threshold id) over the thresholds; repeatable",
    )
    parser.add_argument(
        "--threshold-set",
        action="append",
        default=[],
        include_in_web_ui=False,
        metavar="ID[:LEVEL]=EXPR",
        help="override one level, e.g. 'vector_search.latency_ms:warning=p95 < 80ms'; repeatable",
    )


class HarnessShape(LoadTestShape):
    """Plays a profile from harness.locustusers.shapes, rebuilt from the options at each start, so the web
    UI's user count and run time apply."""

    use_common_options = True

    def __init__(self, name: str, options: Any) -> None:
        super().__init__()
        self.name = name
        self.options = options
        self.profile = self._build()

    def _build(self) -> Profile:
        run_time = self.options.run_time or default_run_time_s(self.name)
        params = ShapeParams(
            users=int(self.options.num_users or 1),
            spawn_rate=float(self.options.spawn_rate or 1),
            run_time_s=float(run_time),
            peak_users=int(self.options.spike_users) or None,
        )
        return SHAPES[self.name](params)

    def reset_time(self) -> None:
        super().reset_time()
        self.profile = self._build()

    def tick(self) -> tuple[int, float] | None:
        return self.profile.at(self.get_run_time())


def _fail(code: int, message: str) -> NoReturn:
    logger.error(message)
    sys.exit(code)


def _bound_the_run(environment: Environment, runner: Runner, options: Any) -> None:
    if options.shape:
        try:
            shape = HarnessShape(options.shape, options)
        except ShapeError as exc:
            _fail(ExitCode.BAD_INPUT, str(exc))
        shape.runner = runner
        environment.shape_class = shape
        logger.info("shape %s: %s", options.shape, shape.profile)
    elif not options.run_time:
        options.run_time = int(default_run_time_s(None))
        logger.info("no --run-time given: the run stops after %d s (pass -t to change)", options.run_time)


def _default_results_path() -> Path:
    return Path("reports") / f"locust-{time.strftime('%Y%m%d-%H%M%S')}" / "results.json"


@events.init.add_listener
def _on_init(environment: Environment, runner: Runner, **_: Any) -> None:
    # libev caches "now" per loop iteration. Loading the locustfile (numpy, psycopg, boto3...) blocks the
    # loop for seconds on a busy machine, and Locust's --run-time timer, set right after this event, would
    # then count from that stale time and end a short run almost at once.
    gevent.get_hub().loop.update_now()
    options = environment.parsed_options
    if options is None:  # an Environment built in code, not by the locust command: nothing to wire
        return
    run = harness_run(environment)
    judging = not isinstance(runner, WorkerRunner)
    if judging:
        try:
            thresholds = load_gate_thresholds(
                [Path(p) for p in options.thresholds] if options.thresholds else list(DEFAULT_THRESHOLD_FILES),
                [Path(p) for p in options.threshold_override],
                options.threshold_set,
            )
        except ThresholdConfigError as exc:
            _fail(ExitCode.BROKEN, f"thresholds are invalid; nothing was run:\n{exc}")
        results_path = Path(options.results) if options.results else _default_results_path()
        report_dir = Path(options.report_dir) if options.report_dir else None
        if report_dir is None and not options.results:
            report_dir = results_path.parent
        _GATES[environment] = _Gate(thresholds, results_path, report_dir)
        _bound_the_run(environment, runner, options)
    # A master of remote workers may not reach the stack; one that forked its workers (--processes) can.
    if not isinstance(runner, MasterRunner) or options.processes:
        try:
            stack = run.stack()
        except (StackNotUpError, ConfigError, EndpointFileError) as exc:
            _fail(ExitCode.FAILED, str(exc))
        if judging and options.cloudwatch and stack.backend != "external":
            # Started now, before any user: the child's start-up (imports, connections) then does not compete
            # with the measured requests.
            publisher = _GATES[environment].cloudwatch = RunPublisher(stack)
            publisher.start()

    environment.events.request.add_listener(lambda **request: _on_request(run.tally, **request))
    environment.events.test_start.add_listener(lambda **_: _restart(run))
    environment.events.reset_stats.add_listener(lambda **_: _restart(run))
    if isinstance(runner, WorkerRunner):
        environment.events.report_to_master.add_listener(lambda data, **_: data.update(harness=run.tally.drain()))
    elif isinstance(runner, MasterRunner):
        gate = _GATES[environment]
        environment.events.worker_report.add_listener(
            lambda client_id, data, **_: _merge_worker_report(run, gate, client_id, data)
        )
    else:
        gevent.spawn(_flush_locally, run)
    environment.events.quitting.add_listener(_on_quitting)


def _on_request(
    tally: Tally, request_type: str, name: str, response_time: float, exception: BaseException | None, **_: Any
) -> None:
    labels = {"request_type": request_type, "name": name}
    tally.expect("locust.request_ms", "locust.failure_rate_pct")
    tally.latency("locust.request_ms", response_time, labels)
    failed = exception is not None and not isinstance(exception, AccountedFailure)
    tally.rate("locust.failure_rate_pct", int(failed), 1, {"request_type": request_type})


def _restart(run: HarnessRun) -> None:
    run.tally.drain()
    run.tally.expected.clear()
    run.totals = RunTotals()


def _merge_worker_report(run: HarnessRun, gate: _Gate, client_id: str, data: dict[str, Any]) -> None:
    part = data.get("harness")
    if part is not None:  # a worker that did not load this locustfile's harness listeners sends none
        run.totals.merge(part)
        gate.workers.add(client_id)


def _flush_locally(run: HarnessRun) -> None:
    while True:
        gevent.sleep(LOCAL_FLUSH_INTERVAL_S)
        run.totals.merge(run.tally.drain())


def _run_facts(environment: Environment, run: HarnessRun, gate: _Gate) -> dict[str, Any]:
    options = environment.parsed_options
    assert options is not None, "Locust parses its options before the test starts"
    knobs = ("shape", "spike_users", "via", "pool_size", "ef_search", "k", "zipf_s", "audit_batch")
    facts: dict[str, Any] = {
        **machine_facts(Path.cwd()),
        "locust": {
            "locustfile": options.locustfile,
            "user_classes": sorted(cls.__name__ for cls in environment.user_classes),
            "users": options.num_users,
            "spawn_rate": options.spawn_rate,
            "run_time_s": options.run_time,
            "workers": len(gate.workers),
            **{knob: getattr(options, knob) for knob in knobs},
        },
    }
    try:
        stack = run.stack()
    except (StackNotUpError, ConfigError, EndpointFileError):
        return facts  # a master of remote workers: the workers knew the stack, this machine does not
    # The same environment facts a sign-off records (versions, sizing, cgroups), so the report states them
    # under the names it looks for; the data profile is what the database holds now.
    facts = {**facts, **run_facts(stack, Path.cwd())}
    try:
        state = current_seed(stack.direct)
    except Exception as exc:  # the verdict does not depend on it; the report then says it was not recorded
        logger.info("data profile not recorded: %s", exc)
        state = None
    return facts if state is None else {**facts, "data_profile": state.profile}


def _on_quitting(environment: Environment, **_: Any) -> None:
    run = harness_run(environment)
    gate = _GATES.get(environment)
    if gate is None:  # a worker: its last report has gone to the master
        run.close()
        return
    # Until the verdict is in, the run counts as broken: an error below must not exit 0.
    environment.process_exit_code = ExitCode.BROKEN
    run.totals.merge(run.tally.drain())
    run.close()
    facts = _run_facts(environment, run, gate)
    if gate.cloudwatch is not None:
        try:
            facts |= gate.cloudwatch.facts()
        except Exception as exc:  # the verdict stands without it; the checklist then says NOT CHECKED YET
            logger.warning("CloudWatch evidence not recorded: %s", exc)
    results = ResultsWriter.open(gate.results_path, run=facts)
    run.totals.write(results)
    runner = environment.runner
    exceptions = sum(int(e["count"]) for e in runner.exceptions.values()) if runner else 0
    outcome = judge(gate.thresholds, results.read(), run.totals.expected, exceptions)
    logger.info("harness results: %s (%d requests)", gate.results_path, run.totals.total_count("locust.request_ms"))
    logger.info("harness verdict:\n%s", outcome.text())
    if gate.report_dir is not None:
        judged = judged_thresholds(gate.thresholds, run.totals.expected)
        report = render_report(gate.results_path, gate.report_dir, judged)
        logger.info("harness report: %s", report.files["report.html"])
    environment.process_exit_code = outcome.exit_code
