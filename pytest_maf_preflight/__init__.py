"""pytest-maf-preflight: gate pytest sessions of multi-agent coding setups on preflight checks.

This module stays cheap to import: pytest loads the plugin in every run, and a run
without ``--maf-preflight`` must not pay for pydantic, jsonschema or SQLite.
"""

__version__ = "0.1.0"
