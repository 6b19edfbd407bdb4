"""A seed's dataset: the held-out queries and their exact neighbours, kept under `data_dir/<dataset>/`.

A dataset is named by what decides its ground truth (the vectors, the queries and the depth k), not by the
relational data, so seeds that differ only in users or orders share one. It is computed once per dataset and
found again from the dataset key the database's seed_state records (harness.data.loading). The files themselves
and recall against them are harness.data.ground_truth's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.data.ground_truth import GroundTruth, exact_neighbours, load_ground_truth, save_ground_truth
from harness.data.loading import APP_SCHEMA, SeedError, content_digest, current_seed
from harness.data.vectors import DOC_ID_BASE, VectorSource
from harness.endpoints import PostgresEndpoint
from harness.progress import Progress


def dataset_key(source: VectorSource, k: int) -> str:
    """Identifies the vectors, the queries and the ground-truth depth (not the relational data)."""
    return content_digest({"source": source.identity(), "k": k})[:16]


def ground_truth_dir(root: Path, source: VectorSource, key: str) -> Path:
    return root / f"{source.count}x{source.dim}-{key}"


def ensure_ground_truth(
    source: VectorSource,
    k: int,
    directory: Path,
    key: str,
    progress: bool,
    *,
    table: str = "documents",
    column: str = "embedding",
    key_column: str = "doc_id",
) -> bool:
    """Compute and save the exact top-k of the held-out queries unless this dataset's files exist.
    Returns True if it computed them."""
    manifest = directory / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()).get("dataset_key") == key:
        return False
    queries = source.queries()
    with Progress(f"ground truth ({len(queries)} queries, top {k})", source.count, enabled=progress) as bar:
        ids, distances = exact_neighbours(source, queries, k, on_rows=bar.advance)
    manifest_data = ground_truth_manifest(
        source, key, k, len(queries), table=table, column=column, key_column=key_column
    )
    save_ground_truth(directory, queries, ids, distances, manifest_data)
    return True


def ground_truth_manifest(
    source: VectorSource,
    key: str,
    k: int,
    queries: int,
    *,
    table: str = "documents",
    column: str = "embedding",
    key_column: str = "doc_id",
) -> dict[str, Any]:
    return {
        "dataset_key": key,
        "source": source.identity(),
        "k": k,
        "queries": queries,
        "metric": "cosine",
        "doc_id_base": DOC_ID_BASE,
        "table": f"{APP_SCHEMA}.{table}",
        "column": column,
        "key_column": key_column,
    }


def load_current_ground_truth(
    endpoint: PostgresEndpoint, root: Path, table: str | None = None, column: str | None = None
) -> GroundTruth:
    """The queries and exact neighbours matching the data the database holds now: for the vector column
    `table.column` when the seed has several (a data spec may name more than one), else its only one."""
    state = current_seed(endpoint)
    if state is None:
        raise SeedError(f"the database at {endpoint.host}:{endpoint.port} was never seeded: run `harness seed`")
    key = state.dataset_key
    named: dict[str, str] = state.params.get("ground_truth") or {}
    if named and (table or column):
        wanted = f"{table}.{column}"
        if wanted not in named:
            raise SeedError(
                f"the seed holds no ground truth for {wanted}; it has {', '.join(named) or 'none'}: "
                "name the vector column in the data spec (a `vector` generator) and seed again"
            )
        key = named[wanted]
    matches = sorted(root.glob(f"*-{key}"))
    if matches and table is not None:
        manifest = load_ground_truth(matches[0]).manifest
        held = (manifest.get("table"), manifest.get("column"))
        if held != (f"{APP_SCHEMA}.{table}", column):
            raise SeedError(
                f"the seeded data has ground truth for {held[0]}.{held[1]}, not {table}.{column}: seed the schema "
                "your workload file's vector_search names, or point HARNESS_WORKLOAD at the matching file"
            )
    if not matches:
        raise SeedError(
            f"no ground truth for dataset {key} under {root}: run `harness seed` again with the "
            f"same options (profile {state.profile}) to recreate it"
        )
    return load_ground_truth(matches[0])
