"""The ``maf-preflight`` command line (SPEC S9): ``main`` dispatches, one module per command group.

Modules here import only the standard library at top level; each command imports what it needs
when it runs, so ``maf-preflight --help`` stays fast.
"""
