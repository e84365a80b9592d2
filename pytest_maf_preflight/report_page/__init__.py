"""The report page: one self-contained HTML file showing what the runtime knows.

``pytest --maf-preflight --maf-html=PATH`` writes it for that run (``run``), ``maf-preflight
report --html PATH`` from the runtime (``gather``). ``model`` holds what a page shows, ``gather``
reads it from a runtime, ``render`` and ``charts`` turn it into HTML, ``assets`` holds the
page's CSS and script. Imported only when a page is asked for.
"""
