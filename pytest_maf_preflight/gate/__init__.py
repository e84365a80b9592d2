"""The preflight gate inside pytest: items, decision, xdist support, reports (SPEC S7)."""
