"""Check types: one module per type, each holding its definition model and its runner (SPEC S2),
imported when a config uses the type (see ``builtin``)."""
