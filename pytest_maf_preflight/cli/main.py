"""``maf-preflight``: the parser, the dispatch to command groups, and the top-level error guard.

Each command group lives in its own module with a ``register(subparsers)`` function that adds its
parsers and sets ``handler`` (a function ``(argparse.Namespace) -> int``). Group modules import
only the standard library at top level; heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..runtime.errors import RuntimeStateError
from .common import PROG, CliError, CliExit, describe_os_error, error_line

EPILOG = """\
exit codes:
  0  success; every config involved is valid
  1  a config is invalid or could not be migrated (one line per problem);
     guard check: the commit is blocked (a reservation conflict, a check that
     errored or timed out, an invalid config, no lease store)
  2  usage or I/O error (bad argument, missing path, unwritable file)
  3  internal error in maf-preflight
  4  refused: reservations (another agent's conflicting lease blocks the
     acquire or renewal; the lease is unknown, someone else's or released);
     escalations (unknown or closed escalation, or a permissions rule);
     waive (a permissions rule, no reservation conflict to waive); waivers
     revoke, silence expire (no such id); messages ack (no message has that id)
"""


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line, with a pointer to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(CliExit.USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> Parser:
    from pytest_maf_preflight import __version__

    from . import (
        agent_commands,
        config_commands,
        escalate_command,
        escalation_commands,
        guard_commands,
        message_commands,
        report_commands,
        reservation_commands,
        runtime_commands,
        silence_commands,
        waiver_commands,
    )

    parser = Parser(
        prog=PROG,
        description="Validate and migrate pytest-maf-preflight configs; read and sync its runtime; "
        "hold and inspect reservations; guard commits.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # One module per command group; later groups (history, reservations, ...) join this tuple.
    for group in (
        config_commands,
        runtime_commands,
        reservation_commands,
        guard_commands,
        escalation_commands,
        escalate_command,
        waiver_commands,
        silence_commands,
        message_commands,
        agent_commands,
        report_commands,
    ):
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``maf-preflight`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args.handler(args))
    except CliError as exc:
        print(error_line(exc.message), file=sys.stderr)
        return int(exc.code)
    except RuntimeStateError as exc:  # a runtime that opened but then failed (locked, corrupt)
        print(error_line(str(exc)), file=sys.stderr)
        return int(CliExit.USAGE)
    except KeyboardInterrupt:
        print(error_line("interrupted"), file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``); silence the flush at exit and stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        print(error_line(describe_os_error(exc)), file=sys.stderr)
        return int(CliExit.USAGE)
    except Exception as exc:  # the last guard: a bug must still be one line, not a traceback
        print(
            error_line(
                f"internal error: {type(exc).__name__}: {exc} (please report this; "
                "MAF_PREFLIGHT_DEBUG=1 shows the traceback)"
            ),
            file=sys.stderr,
        )
        if os.environ.get("MAF_PREFLIGHT_DEBUG"):
            raise
        return int(CliExit.INTERNAL)
