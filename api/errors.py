"""User-facing errors: one clear line and a non-zero exit instead of a traceback.

Library code raises :class:`UserError` for mistakes a user can fix (bad flags, missing data,
damaged files). CLIs wrap their ``main`` in :func:`run_cli`, which prints ``error: <message>``
to stderr and exits with status 2. Programming errors still raise normally.
"""
from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence


class UserError(Exception):
    """A problem caused by input the user controls; the message names the fix."""


def run_cli(main: Callable[[Optional[Sequence[str]]], object], argv: Optional[Sequence[str]] = None) -> None:
    """Run a CLI entry point, turning UserError and Ctrl-C into one line and exit codes."""
    from api.runs.run_folder import interrupt_message, on_interrupt

    on_interrupt(None)  # a run registers what a Ctrl-C leaves behind once it has something
    try:
        main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(interrupt_message(), file=sys.stderr)
        sys.exit(130)
