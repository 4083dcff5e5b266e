"""One module per CLI subcommand; each defines a module-level click ``command``."""
