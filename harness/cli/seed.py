"""`harness seed`: load a profile's data into the running stack.

Contract with harness.cli: `add_seed_command(subparsers, parents=[common])` registers the sub-command
with `func=run_seed`; `run_seed(args)` returns the exit code. Settings come from `args.settings` when
the caller put a resolved Settings there, else from `resolve_settings()` with the common `--backend` /
`--state-dir` options if the parser has them (a ConfigError propagates, for main to report). The stack
comes from `load_endpoints(settings.state_dir)`. Exit codes: 0 loaded or already loaded, 1 could not
seed (message on stderr, previous data intact), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.backup.catalog import BackupError
from harness.backup.unit import after_seed
from harness.cli.common import non_negative_int, positive_int, running_stack, settings_from
from harness.config import Settings
from harness.data.app_role import AppRoleError, app_credentials, data_root
from harness.data.loading import SeedError
from harness.data.migrations import MigrationError
from harness.data.profiles import INDEX_KINDS, PROFILES, SeedProfileError, get_profile
from harness.data.seed import seed
from harness.data.spec import DataSpecError, load_data_spec
from harness.data.team_seed import seed_dump, seed_team
from harness.data.vectors import VectorDataError, open_vector_file
from harness.endpoints import EndpointFileError, StackEndpoints
from harness.thresholds import ExitCode


def add_seed_command(subparsers: Any, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    sizes = "; ".join(f"{p.name}: {p.users:,} users, {p.vectors:,} x {p.dim}" for p in PROFILES.values())
    parser = subparsers.add_parser(
        "seed",
        parents=list(parents),
        help="load users, personal data, documents with embeddings and vector ground truth",
        description=(
            "Seed the unit's database through the direct endpoint. Re-running the same options is a no-op; "
            f"other options replace the data in one transaction. Profiles: {sizes}."
        ),
    )
    parser.add_argument("--profile", default="default", choices=list(PROFILES), help="data size (default: default)")
    parser.add_argument("--users", type=positive_int, help="override the profile's number of users")
    parser.add_argument("--vectors", type=positive_int, help="override the profile's number of documents")
    parser.add_argument("--dim", type=positive_int, help="embedding dimension (384, 768, 1536...)")
    parser.add_argument("--seed", type=non_negative_int, help="random seed of the generated data")
    parser.add_argument("--index", choices=INDEX_KINDS, help="vector index (default: hnsw)")
    parser.add_argument("--m", type=positive_int, help="HNSW m (default 16)")
    parser.add_argument("--ef-construction", type=positive_int, help="HNSW ef_construction (default 64)")
    parser.add_argument("--lists", type=positive_int, help="IVFFlat lists (default: rows/1000, sqrt above 1M)")
    parser.add_argument("--build-memory", help="maintenance_work_mem for the index build only (default 512MB)")
    parser.add_argument(
        "--embeddings",
        type=Path,
        help="load your own embeddings (.npy or .parquet) instead of generated ones; "
        "the last rows are held out as queries",
    )
    parser.add_argument(
        "--schema",
        type=Path,
        metavar="DIR",
        help="your migrations (ordered .sql files: 001_x.sql, V1__x.sql, R__x.sql) instead of the built-in schema",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="SPEC.yaml",
        help="with --schema: a data spec (tables, row counts, column generators, vector columns) to load",
    )
    parser.add_argument(
        "--restore",
        type=Path,
        metavar="FILE.dump",
        help="restore a pg_dump -Fc file of one schema (an anonymised staging copy) instead of generating data",
    )
    parser.add_argument(
        "--vector-column",
        metavar="TABLE.COLUMN",
        help="with --restore: compute ground truth for this vector column (needs --queries)",
    )
    parser.add_argument(
        "--queries", type=Path, metavar="FILE.npy", help="with --restore: your held-out query embeddings (.npy)"
    )
    parser.add_argument("--force", action="store_true", help="reload even if the database holds this seed")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--no-backup",
        action="store_true",
        help="skip the automated base backup a fresh load makes on the embedded stack (as RDS does at creation)",
    )
    parser.set_defaults(func=run_seed)
    return parser  # type: ignore[no-any-return]  # argparse's add_parser is typed Any


def run_seed(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        stack = running_stack(settings)
        if args.restore is not None:
            return _run_restore(args, stack, settings)
        if args.vector_column is not None or args.queries is not None:
            raise SeedError("--vector-column and --queries apply to --restore only")
        if args.schema is not None or args.data is not None:
            return _run_team_seed(args, stack, settings)
        if args.embeddings is not None and args.vectors is not None:
            raise SeedError("--vectors does not apply with --embeddings: the file's row count decides")
        profile = get_profile(
            args.profile,
            users=args.users,
            vectors=args.vectors,
            dim=args.dim,
            seed=args.seed,
            kind=args.index,
            m=args.m,
            ef_construction=args.ef_construction,
            lists=args.lists,
            build_memory=args.build_memory,
        )
        source = None
        if args.embeddings is not None:
            source = open_vector_file(args.embeddings.expanduser(), profile.queries, expected_dim=args.dim)
        role, password = app_credentials(stack, settings.state_dir)
        report = seed(
            stack.direct,
            profile,
            data_root(settings.state_dir),
            password,
            app_role=role,
            source=source,
            force=args.force,
            progress=not args.quiet,
        )
    except (
        SeedError,
        AppRoleError,
        SeedProfileError,
        VectorDataError,
        MigrationError,
        EndpointFileError,
        DataSpecError,
    ) as exc:
        print(f"harness seed: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        print("harness seed: interrupted; the previous data is intact", file=sys.stderr)
        return ExitCode.INTERRUPTED
    print(report.summary())
    if report.skipped or args.no_backup:
        return ExitCode.OK
    try:
        info = after_seed(settings, stack, report=lambda line: print(line, file=sys.stderr))
    except BackupError as exc:
        print(f"harness seed: the data is loaded, but the automated backup failed: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    if info is None:
        return ExitCode.OK
    print(f"automated backup {info.backup_id}: {info.size_bytes / 1e6:.1f} MB in {info.region} and {info.copied_to}")
    return ExitCode.OK


_BUILT_IN_ONLY = (
    "users",
    "vectors",
    "dim",
    "seed",
    "index",
    "m",
    "ef_construction",
    "lists",
    "build_memory",
    "embeddings",
)


def _run_team_seed(args: argparse.Namespace, stack: StackEndpoints, settings: Settings) -> int:
    """--schema/--data: the team's schema and data instead of the built-in application's."""
    if args.schema is None:
        raise SeedError("--data needs --schema DIR: the spec fills the tables your migrations create")
    given = [f"--{name.replace('_', '-')}" for name in _BUILT_IN_ONLY if getattr(args, name) is not None]
    if given:
        raise SeedError(
            f"{', '.join(given)} apply to the built-in schema only; with --schema, sizes and vectors come from "
            "the data spec (--data)"
        )
    spec = load_data_spec(args.data.expanduser()) if args.data is not None else None
    role, password = app_credentials(stack, settings.state_dir)
    report = seed_team(
        stack.direct,
        args.schema.expanduser(),
        spec,
        data_root(settings.state_dir),
        password,
        app_role=role,
        force=args.force,
        progress=not args.quiet,
    )
    print(report.summary())
    return ExitCode.OK


def _run_restore(args: argparse.Namespace, stack: StackEndpoints, settings: Settings) -> int:
    """--restore: a dump of the team's data, its schema and indexes included."""
    others = [f"--{name.replace('_', '-')}" for name in (*_BUILT_IN_ONLY, "schema", "data") if getattr(args, name)]
    if others:
        raise SeedError(f"--restore brings its own schema and data: drop {', '.join(others)}")
    role, password = app_credentials(stack, settings.state_dir)
    report = seed_dump(
        stack.direct,
        args.restore.expanduser(),
        data_root(settings.state_dir),
        password,
        app_role=role,
        force=args.force,
        progress=not args.quiet,
        vector_column=args.vector_column,
        queries_file=args.queries.expanduser() if args.queries else None,
    )
    print(report.summary())
    return ExitCode.OK
