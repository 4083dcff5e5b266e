"""Searching an index into tie-free TREC runs: the one tie rule and the search runner."""
