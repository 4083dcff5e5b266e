"""Building and verifying indexes of a JsonVectorCollection (or texts, for BM25)."""
