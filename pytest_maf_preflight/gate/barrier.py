"""The ``maf_smoke`` barrier across xdist workers.

Under xdist each worker runs a share of the tests, so a worker that reaches an ordinary test
must first know the outcome of every selected ``maf_smoke`` test, wherever it ran. Workers
record each smoke outcome as a small file in a directory the controller created, written by
temp file + rename so a reader never sees half a record; a waiting worker polls for them.

This is deadlock-free when every worker runs its share in collection order with the smoke
tests first, which holds for ``--dist load`` (the default of ``-n``), ``worksteal`` and
``each``. The scope-based modes can queue a smoke test behind a test that waits for it, so the
gate refuses them when smoke tests are collected.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

SAFE_DIST_MODES = frozenset({"no", "load", "worksteal", "each"})


def is_rerun(report: pytest.TestReport) -> bool:
    """A failed attempt that a rerun plugin (pytest-rerunfailures) runs again."""
    return str(report.outcome) == "rerun"


class SmokeBarrierTimeout(Exception):
    pass


class SmokeBarrierAborted(Exception):
    """The controller is stopping the session (``-x``, ``--maxfail``, interrupt)."""


class SmokeBarrier:
    def __init__(self, directory: Path, limit_seconds: float = 600.0) -> None:
        self.directory = directory
        self.limit_seconds = limit_seconds
        #: Smoke tests whose current attempt will be run again (this process's reports).
        self._rerunning: set[str] = set()

    def settles(self, report: pytest.TestReport) -> bool:
        """Whether ``report`` gives its smoke test an outcome to record: a failure, or the
        teardown of an attempt that is not run again. The teardown of an attempt that
        pytest-rerunfailures reruns (its failure reported as ``rerun``) is no outcome yet:
        recorded as passed, it would let waiting workers through before the rerun failed."""
        if is_rerun(report):
            self._rerunning.add(report.nodeid)
            return False
        if report.failed:
            return True
        if report.when != "teardown":
            return False
        if report.nodeid in self._rerunning:
            self._rerunning.discard(report.nodeid)
            return False
        return True

    def _file(self, nodeid: str) -> Path:
        return self.directory / (hashlib.sha256(nodeid.encode()).hexdigest()[:32] + ".json")

    def _write(self, path: Path, data: object) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)

    def record(self, nodeid: str, failed: bool) -> None:
        self._write(self._file(nodeid), {"nodeid": nodeid, "failed": failed})

    def publish_smoke_ids(self, nodeids: Sequence[str]) -> None:
        """Workers share the selected smoke tests, so the controller can tell a crashed
        smoke test (whose report carries no markers) from an ordinary one."""
        self._write(self.directory / "smoke-ids.json", list(nodeids))

    def smoke_ids(self) -> set[str]:
        try:
            return set(json.loads((self.directory / "smoke-ids.json").read_text()))
        except (FileNotFoundError, ValueError):
            return set()

    def abort(self, reason: str) -> None:
        """Release every waiting worker: the session is stopping."""
        self._write(self.directory / "abort.json", {"reason": reason})

    def wait(self, nodeids: Sequence[str]) -> list[str]:
        """Block until every smoke test in ``nodeids`` has a record; return the failed ones."""
        deadline = time.monotonic() + self.limit_seconds
        pending = list(nodeids)
        failed: list[str] = []
        delay = 0.005
        while True:
            still = []
            for nodeid in pending:
                try:
                    record = json.loads(self._file(nodeid).read_text())
                except FileNotFoundError:
                    still.append(nodeid)
                    continue
                if record["failed"]:
                    failed.append(nodeid)
            pending = still
            if not pending:
                return [n for n in nodeids if n in failed]
            try:
                reason = json.loads((self.directory / "abort.json").read_text())["reason"]
            except (FileNotFoundError, ValueError, KeyError):
                pass
            else:
                raise SmokeBarrierAborted(str(reason))
            if time.monotonic() > deadline:
                raise SmokeBarrierTimeout(
                    f"{len(pending)} maf_smoke test(s) gave no outcome within "
                    f"{self.limit_seconds:g} s: {', '.join(pending[:3])}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
