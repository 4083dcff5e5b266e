"""SPLADE training on sentence-transformers' SparseEncoder machinery (config, data, model, loop, diagnostics)."""
