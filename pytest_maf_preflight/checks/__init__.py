"""Check types: one module per type, each holding its definition model and its runner (SPEC S2)."""
