"""Scoring runs with ir_measures, and statistics over per-query values."""
