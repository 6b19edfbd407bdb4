"""Seed logic that needs no database: profiles, fixture SQL, generated rows, fingerprints, CLI wiring."""

import argparse
import json
import stat

import numpy as np
import pytest

from harness.cli.seed import add_seed_command
from harness.config import Settings
from harness.data.app_role import APP_CREDENTIALS_FILE, AppRoleError, app_credentials, app_endpoint
from harness.data.datasets import dataset_key
from harness.data.migrations import FIXTURES_SQL_DIR, MigrationError, load_migrations, schema_version
from harness.data.profiles import PROFILES, IndexSpec, SeedProfileError, get_profile
from harness.data.seed import generated_source, seed_fingerprint
from harness.data.tables import Population
from harness.data.vectors import DOC_ID_BASE


def small(**changes):
    return get_profile("ci", **{"users": 300, "vectors": 600, "queries": 5, **changes})


# --- profiles -----------------------------------------------------------------------------------


def test_profiles_are_sized_as_documented():
    assert PROFILES["ci"].vectors <= 10_000
    assert PROFILES["default"].vectors == 100_000 and PROFILES["default"].dim == 384
    assert PROFILES["large"].vectors >= 1_000_000 and PROFILES["large"].dim == 384
    assert PROFILES["default"].index == IndexSpec("hnsw", m=16, ef_construction=64)


def test_overrides_apply_and_none_keeps_the_profile_value():
    p = get_profile("default", users=5, vectors=50, dim=768, seed=None, kind="ivfflat", m=None)
    assert (p.users, p.vectors, p.dim, p.seed) == (5, 50, 768, PROFILES["default"].seed)
    assert p.index.kind == "ivfflat" and p.index.m == 16
    assert p.k == 50  # ground-truth depth shrinks with a smaller set


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"dim": 4000}, "out of range"),
        ({"users": 0}, "users must be at least 1"),
        ({"kind": "flat"}, "index must be one of"),
        ({"m": 16, "ef_construction": 10}, "at least 2 \\* m"),
        ({"build_memory": "lots"}, "build memory must look like"),
        ({"colour": "blue"}, "unknown profile field"),
    ],
)
def test_bad_overrides_say_what_is_wrong(overrides, message):
    with pytest.raises(SeedProfileError, match=message):
        get_profile("ci", **overrides)


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(SeedProfileError, match="known: ci, default, large"):
        get_profile("huge")


def test_ivfflat_lists_follow_pgvector_guidance():
    spec = IndexSpec(kind="ivfflat")
    assert spec.ivfflat_lists(500) == 1
    assert spec.ivfflat_lists(100_000) == 100
    assert spec.ivfflat_lists(4_000_000) == 2000
    assert IndexSpec(kind="ivfflat", lists=7).ivfflat_lists(100_000) == 7


# --- fixture SQL --------------------------------------------------------------------------------


def test_fixture_sql_files_are_versioned_phased_and_render_every_placeholder():
    migrations = load_migrations()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert {m.phase for m in migrations} == {"schema", "finalize"}
    text = "\n".join(m.render(None, dim=768, schema="app_staging", app_role="dbunit_app") for m in migrations)
    assert "{{" not in text and "vector(768)" in text
    for table in (
        "users",
        "profiles",
        "consents",
        "events",
        "documents",
        "audit_log",
        "gdpr_requests",
        "schema_migrations",
        "seed_state",
    ):
        assert f"CREATE TABLE {table} (" in text
    assert 'GRANT SELECT, INSERT ON audit_log TO "dbunit_app"' in text


def test_fixture_sql_problems_are_reported(tmp_path):
    (tmp_path / "001_ok.sql").write_text("-- phase: schema\nSELECT 1;\n")
    (tmp_path / "1_bad.sql").write_text("-- phase: schema\n")
    with pytest.raises(MigrationError, match=r"NNN_name\.sql"):
        load_migrations(tmp_path)
    (tmp_path / "1_bad.sql").unlink()
    (tmp_path / "002_nophase.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="first line must be"):
        load_migrations(tmp_path)
    (tmp_path / "002_nophase.sql").write_text("-- phase: finalize\nSELECT {{colour}};\n")
    with pytest.raises(MigrationError, match="unknown placeholder \\{\\{colour\\}\\}"):
        load_migrations(tmp_path)[1].render(None, dim=3, schema="s", app_role="r")
    with pytest.raises(MigrationError, match="is missing"):
        load_migrations(tmp_path / "nowhere")


# --- generated rows -----------------------------------------------------------------------------


def rows_of(table):
    return [row for chunk in table.chunks for row in chunk]


def test_relational_rows_are_deterministic_and_match_their_announced_counts():
    profile = small()
    first, second = Population(profile), Population(profile)
    source = generated_source(profile)
    for a, b in zip(first.tables(source), second.tables(source), strict=True):
        rows_a, rows_b = rows_of(a), rows_of(b)
        assert len(rows_a) == a.total, a.name
        assert len(a.columns) == len(a.types) == len(rows_a[0])
        if a.name == "documents":
            np.testing.assert_array_equal(np.stack([r[-1] for r in rows_a]), np.stack([r[-1] for r in rows_b]))
            rows_a, rows_b = [r[:-1] for r in rows_a], [r[:-1] for r in rows_b]
        assert rows_a == rows_b, a.name
    other = rows_of(Population(small(seed=43)).users_table())
    assert other != rows_of(first.users_table())


def test_activity_is_heavy_tailed_and_documents_belong_to_their_owner_tenant():
    population = Population(get_profile("default", users=5000, vectors=2000))
    counts = population.event_counts
    assert counts.max() > 20 * max(1, np.median(counts))
    assert (counts == 0).any()
    docs = rows_of(population.documents_table(generated_source(get_profile("default", users=5000, vectors=2000))))
    assert [r[0] for r in docs] == list(range(DOC_ID_BASE, DOC_ID_BASE + 2000))
    assert all(r[2] == population.tenant[r[1] - 1] for r in docs)


def test_gdpr_history_refers_to_present_and_deleted_users():
    population = Population(small())
    requests = rows_of(population.gdpr_requests_table())
    kinds = {r[2] for r in requests}
    assert kinds == {"export", "deletion"}
    assert all(r[3] == "completed" for r in requests)
    assert all(r[1] > population.users for r in requests if r[2] == "deletion")


# --- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_changes_with_every_input_and_only_then():
    migrations = load_migrations()
    base = small()

    def fp(profile, role="dbunit_app"):
        return seed_fingerprint(profile, generated_source(profile), migrations, role)

    assert fp(base) == fp(small())
    variants = [small(seed=1), small(users=301), small(vectors=601), small(dim=768), small(kind="ivfflat"), small(m=24)]
    assert len({fp(base), *map(fp, variants), fp(base, role="other")}) == len(variants) + 2
    # The dataset (vectors, queries, ground truth) does not depend on the index or the users.
    assert dataset_key(generated_source(base), base.k) == dataset_key(generated_source(small(users=5)), base.k)


def test_schema_version_tracks_fixture_content(tmp_path):
    for path in FIXTURES_SQL_DIR.glob("*.sql"):
        (tmp_path / path.name).write_text(path.read_text())
    before = schema_version(load_migrations(tmp_path))
    assert before == schema_version(load_migrations())
    with (tmp_path / "003_audit_gdpr.sql").open("a") as handle:
        handle.write("\n-- a comment\n")
    assert schema_version(load_migrations(tmp_path)) != before


# --- credentials and CLI ------------------------------------------------------------------------


def test_app_credentials_come_from_the_proxy_when_it_has_its_own_role(tmp_path, make_endpoints):
    role, password = app_credentials(make_endpoints(proxy_user="app_user", proxy_password="proxy-pw"), tmp_path)
    assert (role, password.reveal()) == ("app_user", "proxy-pw")
    assert not (tmp_path / APP_CREDENTIALS_FILE).exists()


def test_app_credentials_are_kept_private_in_the_state_dir(tmp_path, endpoints):
    with pytest.raises(AppRoleError, match="run `harness seed` first"):
        app_endpoint(endpoints, tmp_path)
    role, password = app_credentials(endpoints, tmp_path)
    path = tmp_path / APP_CREDENTIALS_FILE
    assert role == "dbunit_app" and len(password.reveal()) >= 24
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert app_credentials(endpoints, tmp_path) == (role, password)
    endpoint = app_endpoint(endpoints, tmp_path)
    assert (endpoint.user, endpoint.port, endpoint.password) == ("dbunit_app", 16432, password)
    assert json.loads(path.read_text())["role"] == "dbunit_app"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="harness")
    add_seed_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_seed_command_parses_profile_and_overrides():
    args = parse(
        "seed",
        "--profile",
        "ci",
        "--users",
        "10",
        "--vectors",
        "99",
        "--dim",
        "768",
        "--seed",
        "3",
        "--index",
        "ivfflat",
    )
    assert (args.profile, args.users, args.vectors, args.dim, args.seed, args.index) == (
        "ci",
        10,
        99,
        768,
        3,
        "ivfflat",
    )
    assert parse("seed").profile == "default"
    with pytest.raises(SystemExit):
        parse("seed", "--vectors", "0")


def test_seed_command_without_a_stack_says_how_to_start_one(tmp_path, capsys):
    args = parse("seed", "--profile", "ci")
    args.settings = Settings(state_dir=tmp_path)
    assert args.func(args) == 1
    assert "start it with `harness up`" in capsys.readouterr().err


def test_seed_command_reports_a_wrong_dimension_file_before_connecting(tmp_path, capsys, endpoints):
    from harness.endpoints import save_endpoints

    save_endpoints(tmp_path, endpoints)
    np.save(tmp_path / "mine.npy", np.ones((50, 8), np.float32))
    args = parse("seed", "--profile", "ci", "--embeddings", str(tmp_path / "mine.npy"), "--dim", "384")
    args.settings = Settings(state_dir=tmp_path)
    assert args.func(args) == 1
    assert "8-dimensional vectors but 384 were asked for" in capsys.readouterr().err
