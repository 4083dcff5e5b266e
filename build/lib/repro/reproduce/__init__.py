"""Reproductions as data: presets, plans, verdicts, the report and the demo."""
