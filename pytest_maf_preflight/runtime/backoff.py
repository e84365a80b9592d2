"""How long a SQL store waits before it tries a transaction again: one policy for both stores.

What is retried differs (SQLite: another connection holds the database's lock; PostgreSQL: a
serialization failure or a deadlock, after which the server has rolled the transaction back),
but in both cases the store waits for another transaction to finish, so one policy serves both:

- the first wait is 5 ms: a store's transactions (a lease step, a session of a few hundred
  rows) hold their locks for a few milliseconds, so most retries succeed after one short wait;
- each wait doubles, up to 0.5 s: a long holder (a session of 10,000 rows, a migration) is
  not polled hundreds of times a second, and a freed lock is taken within half a second;
- "equal jitter": half of each wait is fixed, half drawn at random, so processes that collided
  once do not retry in lockstep and collide again, and no wait exceeds the ceiling.

The caller's retry budget bounds the total (``retry_budget_seconds``, 10 s by default).
"""

from __future__ import annotations

import dataclasses
import time


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with equal jitter (the reasons for the numbers: the module's doc)."""

    first: float = 0.005
    ceiling: float = 0.5

    def delay(self, attempt: int, draw: float) -> float:
        """The wait before retry ``attempt`` (1, 2, ...); ``draw`` is uniform in [0, 1)."""
        # The exponent stops growing long before the ceiling matters, so no float overflows.
        full = min(self.ceiling, self.first * 2.0 ** min(attempt - 1, 16))
        return full * (0.5 + draw / 2)

    def wait(self, attempt: int, deadline: float, draw: float) -> bool:
        """Sleep before retry ``attempt``, never past ``deadline`` (a ``time.monotonic()``
        value); False, without sleeping, when the deadline has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(remaining, self.delay(attempt, draw)))
        return True


#: The policy of the ``sqlite`` and ``postgres`` runtimes.
RETRY_BACKOFF = Backoff()
