"""Reproduction presets as data: one TOML per reproduction, read by `repro.preset`."""
