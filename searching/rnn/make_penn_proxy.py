"""Build the PTB proxy corpus of the RNN search: the first 4,000 / 300 / 300 lines of PTB.

    python searching/rnn/make_penn_proxy.py --ptb ./data/penn --out ./data/penn_proxy

``--ptb`` is a folder with Mikolov's ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt``
(the simple-examples archive) or the same files named ``train/valid/test.txt``. Lines are
copied verbatim, so the proxy keeps PTB's vocabulary conventions (``<unk>``, ``N``).
"""
from __future__ import annotations

import argparse
import os
from typing import Dict, Optional, Sequence

from api.runs.atomic_io import atomic_write_text
from api.errors import UserError, run_cli

SPLITS = ("train", "valid", "test")


def find_split(ptb: str, split: str) -> str:
    for name in (f"ptb.{split}.txt", f"{split}.txt"):
        path = os.path.join(ptb, name)
        if os.path.isfile(path):
            return path
    raise UserError(f"--ptb {ptb}: neither ptb.{split}.txt nor {split}.txt found (Mikolov's "
                    "PTB: simple-examples/data/ptb.{train,valid,test}.txt)")


def make_proxy(ptb: str, out: str, lines: Dict[str, int]) -> Dict[str, int]:
    """Write the first ``lines[split]`` lines of each split; returns the lines written."""
    if not os.path.isdir(ptb):
        raise UserError(f"--ptb {ptb}: folder not found")
    written = {}
    for split in SPLITS:
        src = find_split(ptb, split)
        with open(src, encoding="utf-8") as f:
            head = [line for _, line in zip(range(lines[split]), f)]
        if not any(line.strip() for line in head):
            raise UserError(f"{src} is empty")
        text = "".join(line if line.endswith("\n") else line + "\n" for line in head)
        atomic_write_text(os.path.join(out, f"{split}.txt"), text)
        written[split] = len(head)
    return written


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--ptb", default="./data/penn", help="folder holding the full PTB splits")
    p.add_argument("--out", default="./data/penn_proxy", help="output folder")
    p.add_argument("--train_lines", type=int, default=4000)
    p.add_argument("--valid_lines", type=int, default=300)
    p.add_argument("--test_lines", type=int, default=300)
    args = p.parse_args(argv)
    lines = {"train": args.train_lines, "valid": args.valid_lines, "test": args.test_lines}
    for split, n in lines.items():
        if n < 1:
            raise UserError(f"--{split}_lines must be at least 1, got {n}")
    written = make_proxy(args.ptb, args.out, lines)
    print(f"wrote {args.out}: " + ", ".join(f"{s}.txt {n} lines" for s, n in written.items()))


if __name__ == "__main__":
    run_cli(main)
