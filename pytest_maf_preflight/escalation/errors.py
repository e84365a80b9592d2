"""What the escalation engine and the stores raise about escalations.

Apart from the engine so that the runtime, which refuses a delivery naming an unknown escalation
with this error, can import it without importing the engine (``tests/test_lazy_imports.py``).
"""

from __future__ import annotations

from ..runtime.errors import RuntimeStateError


class EscalationError(RuntimeStateError):
    """An escalation cannot do what was asked: unknown, not open, not permitted, or a delivery
    naming an escalation the store does not have."""
