"""The preflight gate inside pytest (SPEC S7), one module per role: ``controller`` (load, run,
decide, record, escalate), ``worker`` (an xdist worker's part), ``report`` (what the user is
told), ``collection`` and ``item_hooks`` (where tests are collected and run), ``state`` (what
they share)."""
