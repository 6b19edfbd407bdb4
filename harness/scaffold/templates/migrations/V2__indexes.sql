-- phase: finalize
-- Runs after the rows are loaded (indexes build faster then).
CREATE INDEX items_category_idx ON items (category);
CREATE INDEX items_embedding_idx ON items USING hnsw (embedding vector_cosine_ops);
