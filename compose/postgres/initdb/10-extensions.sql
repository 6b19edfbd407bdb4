-- Run once, when the postgres container initialises its data volume, in the unit's database.
-- The same extensions the embedded stack creates: pgvector and query statistics.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
