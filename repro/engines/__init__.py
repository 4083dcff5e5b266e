"""Search engines behind one registry: Lucene (Anserini), Seismic."""
