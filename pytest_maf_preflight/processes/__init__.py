"""Child processes: run an argv with a deadline and bounded output (``run``), and the registry
of live process groups that is killed when the session ends (``groups``)."""
