"""ENAS CNN search (macro or micro space) on the one weight-sharing trainer:
``searching/enas/main.py --network_type cnn`` calls :func:`run`.
"""
from __future__ import annotations

import argparse

from api.errors import UserError
from searching.enas.cnn_flags import CNN_SPACES


def check_space(args: argparse.Namespace) -> str:
    space = str(getattr(args, "cnn_space", "macro"))
    if space not in CNN_SPACES:
        raise UserError(f"--cnn_space {space!r} is not one of {', '.join(CNN_SPACES)}")
    return space


def run(args: argparse.Namespace) -> None:
    """Run the ENAS CNN search that ``args`` (main.py's namespace) describes."""
    check_space(args)
    raise UserError("the ENAS CNN search is not built yet")
