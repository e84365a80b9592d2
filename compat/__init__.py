"""Real projects' own test suites, run with and without the plugin (``compat/run.py``).

A package so that its modules are named ``compat.*``: mypy checks it beside ``benchmarks/``,
whose entry script is a ``run.py`` too, and two top-level ``run`` modules cannot both be checked.
"""
