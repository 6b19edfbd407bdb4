"""A team's schema and data without a database: migration ordering, data spec checks and generated rows."""

import io
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from harness.data.dump_restore import (
    DumpError,
    SchemaRewriter,
    copy_blocks,
    dumped_schema,
    parse_toc,
    selected,
    without_session_lines,
)
from harness.data.migrations import MigrationError, load_team_migrations, schema_version
from harness.data.spec import DataSpecError, SpecTables, check_types, load_data_spec, parse_spec
from harness.paths import FIXTURES_DIR

EXAMPLE = FIXTURES_DIR / "example_app"
EXAMPLE_TYPES = {
    "shops": {"shop_id": "int8", "name": "text", "region": "text", "created_at": "timestamptz"},
    "customers": {
        "customer_id": "int8",
        "email": "text",
        "country": "bpchar",
        "marketing": "bool",
        "signed_up": "date",
    },
    "products": {
        "product_id": "int8",
        "shop_id": "int8",
        "title": "text",
        "description": "text",
        "price": "numeric",
        "stock": "int4",
        "embedding": "vector",
    },
    "orders": {
        "order_id": "int8",
        "customer_id": "int8",
        "product_id": "int8",
        "quantity": "int4",
        "status": "text",
        "placed_at": "timestamptz",
    },
}


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


# --- migrations ---------------------------------------------------------------------------------


def test_flyway_versions_order_numerically_and_repeatables_come_last(tmp_path):
    d = write(
        tmp_path,
        **{
            "V10__late.sql": "SELECT 10;",
            "V2__early.sql": "SELECT 2;",
            "V2.1__patch.sql": "SELECT 21;",
            "R__views.sql": "SELECT 'r';",
            "notes.txt": "ignored",
        },
    )
    assert [m.file_name for m in load_team_migrations(d)] == [
        "V2__early.sql",
        "V2.1__patch.sql",
        "V10__late.sql",
        "R__views.sql",
    ]


def test_plain_numbered_files_run_in_number_order_and_phase_comments_defer_them(tmp_path):
    d = write(tmp_path, **{"0002-b.sql": "-- phase: finalize\nSELECT 2;", "001_a.sql": "SELECT 1;"})
    migrations = load_team_migrations(d)
    assert [(m.file_name, m.phase) for m in migrations] == [("001_a.sql", "schema"), ("0002-b.sql", "finalize")]


def test_team_sql_is_applied_exactly_as_written(tmp_path):
    d = write(tmp_path, **{"001_a.sql": "SELECT '{{dim}}';"})
    assert load_team_migrations(d)[0].render(None, dim=3, schema="s", app_role="r") == "SELECT '{{dim}}';"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"init.sql": "SELECT 1;"}, "cannot tell its order"),
        ({"V1__a.sql": "SELECT 1;", "V01__b.sql": "SELECT 2;"}, "share version 1"),
        ({"U1__undo.sql": "SELECT 1;"}, "undo migration"),
        ({"readme.md": "no sql"}, "holds no .sql"),
    ],
)
def test_unorderable_migration_directories_are_refused_with_the_file_named(tmp_path, files, message):
    with pytest.raises(MigrationError, match=message):
        load_team_migrations(write(tmp_path, **files))


def test_a_missing_schema_directory_is_refused(tmp_path):
    with pytest.raises(MigrationError, match="not a directory"):
        load_team_migrations(tmp_path / "nowhere")


def test_editing_a_migration_changes_the_schema_version(tmp_path):
    d = write(tmp_path, **{"001_a.sql": "SELECT 1;"})
    before = schema_version(load_team_migrations(d))
    write(d, **{"001_a.sql": "SELECT 2;"})
    assert schema_version(load_team_migrations(d)) != before


# --- data spec ----------------------------------------------------------------------------------


def spec(tables, **extra):
    return parse_spec({"tables": tables, **extra}, base_dir=Path("."))


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ([{"name": "t", "rows": 5, "columns": {"a": {"gen": "nope"}}}], "unknown generator 'nope'"),
        ([{"name": "t", "rows": 5, "columns": {"a": {"gen": "int", "min": 5, "max": 1}}}], "min 5 is above max 1"),
        ([{"name": "t", "rows": 0, "columns": {"a": "serial"}}], r"tables\[0\] \(t\)\.rows: must be at least 1"),
        ([{"name": "t", "rows": 5, "columns": {"a": {"gen": "bool", "p": 2}}}], "probability"),
        ([{"name": "t", "rows": 5, "columns": {"a": {"gen": "text", "nulls": 1.5}}}], "fraction"),
        (
            [{"name": "t", "rows": 5, "columns": {"a": {"gen": "foreign_key", "ref": "later.id"}}}],
            "must be listed .* before",
        ),
        (
            [
                {"name": "p", "rows": 5, "columns": {"id": {"gen": "int", "min": 1, "max": 9}}},
                {"name": "c", "rows": 5, "columns": {"p": {"gen": "foreign_key", "ref": "p.id"}}},
            ],
            "must be a `serial` column",
        ),
        ([{"name": "t", "rows": 5, "columns": {"v": {"gen": "vector", "dim": 8}}}], "key column"),
        (
            [{"name": "t", "rows": 5, "columns": {"id": "serial", "v": {"gen": "vector", "dim": 4000}}}],
            "dimension 4000 is out of range",
        ),
        (
            [{"name": "t", "rows": 5, "columns": {"id": "serial", "v": {"gen": "vector", "dim": 8, "k": 6}}}],
            "at most the table's 5 rows",
        ),
        ([{"name": "t", "rows": 5, "columns": {"d": {"gen": "date", "start": "soon", "end": "later"}}}], "a date"),
    ],
)
def test_bad_specs_are_refused_naming_the_place(tables, message):
    with pytest.raises(DataSpecError, match=message):
        spec(tables)


def test_a_generator_that_cannot_fill_the_column_type_is_refused():
    s = spec([{"name": "t", "rows": 3, "columns": {"a": {"gen": "text"}}}])
    with pytest.raises(DataSpecError, match="generator text cannot fill a int8 column"):
        check_types(s.tables[0], {"a": "int8"})
    with pytest.raises(DataSpecError, match="has no column 'a'"):
        check_types(s.tables[0], {"b": "text"})


def test_the_example_spec_loads_and_names_its_vector_column():
    example = load_data_spec(EXAMPLE / "data.yaml")
    assert [t.name for t in example.tables] == ["shops", "customers", "products", "orders"]
    (vector,) = example.vectors
    assert (vector.table, vector.column, vector.key, vector.k) == ("products", "embedding", "product_id", 50)
    assert vector.source.count == 3000 and vector.source.dim == 64


def rows_of(s, table, types, chunk_rows=1000):
    data = SpecTables(s, chunk_rows=chunk_rows).table_data(s.table(table), types)
    return [row for chunk in data.chunks for row in chunk]


def test_generated_rows_are_deterministic_whatever_the_chunk_size_for_vectors_and_keys():
    example = load_data_spec(EXAMPLE / "data.yaml")
    a = rows_of(example, "products", EXAMPLE_TYPES["products"], chunk_rows=4096)
    b = rows_of(example, "products", EXAMPLE_TYPES["products"], chunk_rows=4096)
    assert len(a) == 3000
    assert [r[0] for r in a] == list(range(1, 3001))
    assert all(np.array_equal(x[6], y[6]) for x, y in zip(a, b, strict=True))
    assert a[10][:6] == b[10][:6]


def test_example_rows_respect_types_nulls_ranges_and_references():
    example = load_data_spec(EXAMPLE / "data.yaml")
    products = rows_of(example, "products", EXAMPLE_TYPES["products"])
    assert all(1 <= r[1] <= 40 for r in products)
    assert all(isinstance(r[4], Decimal) and r[4] <= 5000 for r in products)
    assert all(0 <= r[5] <= 500 for r in products)
    nulls = sum(r[3] is None for r in products) / len(products)
    assert 0.15 < nulls < 0.25
    customers = rows_of(example, "customers", EXAMPLE_TYPES["customers"])
    assert len({r[1] for r in customers}) == 2000, "template emails must be unique"
    assert all(date(2022, 1, 1) <= r[4] <= date(2026, 1, 1) for r in customers)
    assert {r[2] for r in customers} <= {"DE", "FR", "US", "GB", "PT"}


def test_zipf_ownership_is_heavy_tailed_and_uniform_is_not():
    def top_share(distribution):
        s = spec(
            [
                {"name": "owners", "rows": 1000, "columns": {"id": "serial"}},
                {
                    "name": "items",
                    "rows": 20000,
                    "columns": {"owner": {"gen": "foreign_key", "ref": "owners.id", "distribution": distribution}},
                },
            ]
        )
        owners = [r[0] for r in rows_of(s, "items", {"owner": "int8"}, chunk_rows=5000)]
        assert all(1 <= o <= 1000 for o in owners)
        counts = np.sort(np.bincount(owners))[::-1]
        return counts[:10].sum() / len(owners)

    assert top_share("zipf") > 0.25
    assert top_share("uniform") < 0.05


# --- pg_dump restore ----------------------------------------------------------------------------

TOC = """;
; Archive created at 2026-11-29 14:19:09 UTC
8; 2615 16852 SCHEMA - public dbunit_admin
3; 3079 16400 EXTENSION - vector
2888; 0 0 ACL - SCHEMA public dbunit_admin
229; 1259 16897 TABLE public customers dbunit_admin
228; 1259 16896 SEQUENCE public customers_customer_id_seq dbunit_admin
224; 1259 16853 TABLE public seed_state dbunit_admin
2780; 0 16853 TABLE DATA public seed_state dbunit_admin
2700; 2606 16999 CONSTRAINT public seed_state seed_state_pkey dbunit_admin
2701; 2606 16998 FK CONSTRAINT public orders orders_customer_id_fkey dbunit_admin
240; 1255 17000 FUNCTION public touch(integer) dbunit_admin
2781; 0 16897 TABLE DATA public customers dbunit_admin
"""


def test_the_dump_toc_is_read_and_the_harness_bookkeeping_and_schema_entries_are_left_out():
    entries = parse_toc(TOC)
    assert [(e.kind, e.schema, e.name) for e in entries][3:5] == [
        ("TABLE", "public", "customers"),
        ("SEQUENCE", "public", "customers_customer_id_seq"),
    ]
    assert dumped_schema(entries) == "public"
    kept = [(e.kind, e.name) for e in selected(entries)]
    assert kept == [
        ("TABLE", "customers"),
        ("SEQUENCE", "customers_customer_id_seq"),
        ("FK CONSTRAINT", "orders"),
        ("FUNCTION", "touch(integer)"),
        ("TABLE DATA", "customers"),
    ]


def test_a_dump_of_several_schemas_is_refused():
    two = TOC + "300; 1259 17001 TABLE other t dbunit_admin\n"
    with pytest.raises(DumpError, match=r"2 schemas \(other, public\)"):
        dumped_schema(parse_toc(two))


def test_only_the_dumps_own_objects_move_to_the_staging_schema():
    rewrite = SchemaRewriter("public", {"customers", "customers_customer_id_seq", "touch"}, "app_staging")
    text = (
        "CREATE TABLE public.customers (embedding public.vector(64), id bigint DEFAULT "
        "nextval('public.customers_customer_id_seq'::regclass));\n"
        'SELECT public.touch(1), "public"."customers".id, public.customers_archive FROM x;'
    )
    assert rewrite(text) == (
        "CREATE TABLE app_staging.customers (embedding public.vector(64), id bigint DEFAULT "
        "nextval('app_staging.customers_customer_id_seq'::regclass));\n"
        'SELECT app_staging.touch(1), app_staging."customers".id, public.customers_archive FROM x;'
    )


def test_pg_restore_session_settings_and_psql_meta_commands_are_dropped():
    script = "\\restrict abc\nSET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n"
    assert without_session_lines(script + "CREATE TABLE t ();") == "CREATE TABLE t ();"


def test_the_data_section_splits_into_copy_blocks_and_setval_statements():
    section = io.StringIO(
        "SET x = 1;\nCOPY app.t (a, b) FROM stdin;\n1\tx\n2\t\\N\n\\.\n"
        "SELECT pg_catalog.setval('app.t_a_seq', 2, true);\nCOPY app.u (c) FROM stdin;\n\\.\n"
    )
    assert list(copy_blocks(section)) == [
        ("COPY app.t (a, b) FROM stdin;\n", ["1\tx\n", "2\t\\N\n"]),
        ("COPY app.u (c) FROM stdin;\n", []),
        ("SELECT pg_catalog.setval('app.t_a_seq', 2, true);\n", []),
    ]
