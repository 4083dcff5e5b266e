"""repro: train, encode, index, search and evaluate SPLADE, reproducibly."""

__version__ = "0.1.0"
