"""Preflight configuration: files, formats, schema, models, overrides and migrations (SPEC S1)."""
