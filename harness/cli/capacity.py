"""`harness capacity`: sweep data sizes on the running stack (`run`; with `--classes`, on several instance
classes, restarting the stack with each class's sizing and building each size once), or combine sweeps of
several instance classes into the capacity table and a recommendation (`table`).

Exit codes: 0 done, 1 the sweep could not run or finish (message on stderr; the data is at the last
complete size), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

from harness.capacity.classes import ClassPlan, StackHandle, class_dirs, memory_bytes, run_classes, write_table
from harness.capacity.knee import CapacityInputError, Growth, parse_growth
from harness.capacity.recommend import CapacityModel, Target, load_capacity_model
from harness.capacity.report import chart, compare_classes, sweep_markdown
from harness.capacity.results import SweepResult, merge_results, read_result
from harness.capacity.sweep import PLANS, run_sweep
from harness.cli.common import (
    NoRunningStackError,
    positive_float,
    positive_int,
    quoted,
    running_stack,
    say,
    settings_from,
)
from harness.config import ConfigError, Settings
from harness.data.app_role import AppRoleError
from harness.data.grow import STRATEGIES
from harness.data.loading import SeedError
from harness.model.projection import DEFAULT_MODEL
from harness.services.process import ServiceError
from harness.thresholds import ExitCode, ThresholdConfigError, load_thresholds
from harness.thresholds.loading import DEFAULT_THRESHOLDS_FILE
from harness.thresholds.model import ThresholdSet


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are whole numbers separated by commas, got {quoted(text)}") from None
    if not sizes or any(s < 1 for s in sizes) or list(sizes) != sorted(set(sizes)):
        raise argparse.ArgumentTypeError(f"sizes must be distinct, positive and rising, got {quoted(text)}")
    return sizes


def _classes(text: str) -> tuple[str, ...]:
    classes = tuple(part.strip() for part in text.split(",") if part.strip())
    try:
        ClassPlan(classes, drained=False)
    except CapacityInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return classes


def _memory(text: str) -> str:
    try:
        memory_bytes(text)
    except CapacityInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _growth(text: str) -> Growth:
    try:
        return parse_growth(text)
    except CapacityInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_capacity_command(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "capacity",
        help="how far the unit grows before it stops meeting the thresholds",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="capacity_command", required=True)
    run = sub.add_parser("run", parents=parents, help="sweep data sizes on the running stack's instance class")
    run.add_argument("--plan", choices=list(PLANS), default="full", help="ci (seconds) or full (default; an hour+)")
    run.add_argument("--sizes", type=_sizes, help="documents per step, e.g. 50000,100000,200000")
    run.add_argument(
        "--growth-strategy",
        choices=STRATEGIES,
        help="auto (default: rebuild the index when the new rows exceed a sixth of the total), append, rebuild",
    )
    run.add_argument(
        "--classes",
        type=_classes,
        help="DB instance classes to measure each size on, e.g. db.t3.micro,db.t3.small: the stack is restarted "
        "with each class's sizing (embedded backend) and each size is built once; results per class in <out>/<class>/",
    )
    run.add_argument(
        "--drained",
        action="store_true",
        help="measure with CPU credits drained and the volume at gp2's baseline IOPS (growth still runs undrained)",
    )
    run.add_argument(
        "--build-memory",
        type=_memory,
        help="maintenance_work_mem for index builds while growing, e.g. 3GB; the database's memory cap is raised "
        "by as much for the build only (RDS would build within the instance's memory: the report says so)",
    )
    run.add_argument("--ramp-at", choices=("last", "every"), default="last", help="ramp at the last size or every one")
    run.add_argument("--no-ramp", action="store_true", help="skip the saturation ramp")
    run.add_argument("--ramp-start", type=float, help="the ramp's first rate, searches/s (plan full: 10)")
    run.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS_FILE)
    run.add_argument("--out", type=Path, help="default reports/capacity-<class>-<time>/")
    run.add_argument("--today", type=int, help="documents in production today, for the headroom line")
    run.add_argument("--growth", type=_growth, help="data growth per month: `10%%` or `5000` documents")
    run.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="prices and the target (--classes' table)")
    run.set_defaults(func=cmd_run)

    report = sub.add_parser(
        "report",
        help="render a sweep's capacity.md and capacity.png again from capacity.json (a --classes run: every "
        "class and the combined table)",
    )
    report.add_argument("run", type=Path, help="a capacity output directory")
    report.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="prices and the target (combined table)")
    report.add_argument("--today", type=int, help="documents in production today, for the headroom line")
    report.add_argument("--growth", type=_growth, help="data growth per month: `10%%` or `5000` documents")
    report.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS_FILE)
    report.set_defaults(func=cmd_report)

    table = sub.add_parser("table", help="combine sweeps of several classes: table and recommendation")
    table.add_argument(
        "runs",
        nargs="+",
        type=Path,
        help="capacity output directories (a --classes run's directory counts for all its classes) or capacity.json",
    )
    table.add_argument("--target-size", type=positive_int, help="documents to hold (default: the monthly model's)")
    table.add_argument(
        "--target-rate", type=positive_float, help="searches/s to sustain (default: the monthly model's)"
    )
    table.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="prices and the default target")
    table.add_argument("--thresholds", type=Path, default=DEFAULT_THRESHOLDS_FILE)
    table.add_argument("--out", type=Path, help="write capacity-table.md and capacity.png here")
    table.set_defaults(func=cmd_table)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
        thresholds = load_thresholds(args.thresholds)
        plan = PLANS[args.plan]
        changes: dict[str, Any] = {}
        if args.sizes:
            changes["sizes"] = args.sizes
        if args.growth_strategy:
            changes["growth_strategy"] = args.growth_strategy
        if args.build_memory:
            changes["build_memory"] = args.build_memory
        changes["ramp_every"] = args.ramp_at == "every"
        if args.no_ramp:
            changes["ramp"] = None
        elif args.ramp_start is not None:
            if not args.ramp_start > 0 or plan.ramp is None:
                raise CapacityInputError(f"--ramp-start must be a positive rate, got {args.ramp_start}")
            changes["ramp"] = dataclasses.replace(plan.ramp, start_rate=args.ramp_start)
        plan = dataclasses.replace(plan, **changes)
        if (args.today is None) != (args.growth is None):
            raise CapacityInputError("--today and --growth go together (the headroom line needs both)")
        stack = running_stack(settings)
        db_class = stack.facts.get("postgres", {}).get("instance_class", "unknown")
        classes = ClassPlan(args.classes, args.drained) if args.classes or args.drained else None
        if classes is not None and not args.classes:
            classes = ClassPlan((str(db_class),), args.drained)
        if classes is not None and settings.backend != "embedded":
            raise CapacityInputError(
                f"--classes and --drained restart the stack with other sizing; the {settings.backend} backend "
                "cannot: sweep each deployment on its own and combine them with `harness capacity table`"
            )
        model = load_capacity_model(args.model) if classes is not None else None
        name = "classes" if classes is not None else db_class
        out = args.out or Path("reports") / f"capacity-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    except (CapacityInputError, ThresholdConfigError, ConfigError, OSError, NoRunningStackError) as exc:
        say(f"harness capacity: {exc}")
        return ExitCode.BAD_INPUT
    if classes is not None and model is not None:
        return _run_classes(settings, stack, plan, args, classes, thresholds, out, model)
    say(f"capacity sweep on {db_class}: sizes {', '.join(f'{s:,}' for s in plan.sizes)}; output in {out}")
    try:
        result = run_sweep(stack, settings, plan, args.plan, thresholds, out, say)
    except (SeedError, AppRoleError, CapacityInputError) as exc:
        say(f"harness capacity: {exc}")
        return ExitCode.FAILED
    except KeyboardInterrupt:
        say(f"harness capacity: interrupted; the data is at the last complete size; partial results in {out}")
        return ExitCode.INTERRUPTED
    _render(result, out, thresholds, args.today, args.growth)
    return ExitCode.OK


def _run_classes(
    settings: Settings,
    stack: Any,
    plan: Any,
    args: argparse.Namespace,
    classes: ClassPlan,
    thresholds: ThresholdSet,
    out: Path,
    model: CapacityModel,
) -> int:
    began = time.perf_counter()
    say(
        f"capacity sweep on {', '.join(classes.classes)} ({'drained' if classes.drained else 'credits off'}): "
        f"sizes {', '.join(f'{s:,}' for s in plan.sizes)}; output in {out}"
    )
    try:
        results = run_classes(
            StackHandle(settings, stack, say), plan, args.plan, classes, thresholds, out, say, model, model.target
        )
    except (SeedError, AppRoleError, CapacityInputError, ServiceError) as exc:
        say(f"harness capacity: {exc}")
        return ExitCode.FAILED
    except KeyboardInterrupt:
        say(f"harness capacity: interrupted; the data is at the last complete size; partial results in {out}")
        return ExitCode.INTERRUPTED
    for result in results:
        _render(result, out / result.db_class, thresholds, args.today, args.growth)
    _render_table(results, out, thresholds, model)
    say(f"wall time {time.perf_counter() - began:.0f} s")
    return ExitCode.OK


def _render_table(results: list[SweepResult], out: Path, thresholds: ThresholdSet, model: CapacityModel) -> None:
    path = write_table(results, out, model, model.target)
    chart(results, thresholds, out / "capacity.png")
    print(path.read_text())
    say(f"wrote {path} and {out / 'capacity.png'}")


def _render(result: SweepResult, out: Path, thresholds: ThresholdSet, today: int | None, growth: Growth | None) -> None:
    report = sweep_markdown(result, today, growth)
    (out / "capacity.md").write_text(report)
    chart([result], thresholds, out / "capacity.png")
    print(report)
    say(f"wrote {out / 'capacity.md'}, {out / 'capacity.json'}, {out / 'capacity.png'}")


def cmd_report(args: argparse.Namespace) -> int:
    try:
        if (args.today is None) != (args.growth is None):
            raise CapacityInputError("--today and --growth go together (the headroom line needs both)")
        thresholds = load_thresholds(args.thresholds)
        dirs = class_dirs(args.run)
        results = [read_result(path) for path in dirs]
        model = load_capacity_model(args.model) if len(results) > 1 else None
    except (CapacityInputError, ThresholdConfigError, OSError) as exc:
        say(f"harness capacity report: {exc}")
        return ExitCode.BAD_INPUT
    for path, result in zip(dirs, results, strict=True):
        _render(result, path if path.is_dir() else path.parent, thresholds, args.today, args.growth)
    if model is not None:
        _render_table(results, args.run, thresholds, model)
    return ExitCode.OK


def cmd_table(args: argparse.Namespace) -> int:
    try:
        model = load_capacity_model(args.model)
        thresholds = load_thresholds(args.thresholds)
        results = merge_results([read_result(path) for run in args.runs for path in class_dirs(run)])
        target = Target(
            args.target_size if args.target_size is not None else model.target.documents,
            args.target_rate if args.target_rate is not None else model.target.rate_per_s,
        )
        if target.documents < 1 or target.rate_per_s <= 0:
            raise CapacityInputError(f"the target must be positive, got {target}")
    except (CapacityInputError, ThresholdConfigError, OSError) as exc:
        say(f"harness capacity table: {exc}")
        return ExitCode.BAD_INPUT
    text, _ = compare_classes(results, model, target)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "capacity-table.md").write_text(text)
        chart(results, thresholds, args.out / "capacity.png")
        say(f"wrote {args.out / 'capacity-table.md'} and {args.out / 'capacity.png'}")
    return ExitCode.OK
