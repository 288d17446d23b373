"""Check our NAS-Bench-201 network's params and FLOPs against the benchmark's own columns.

For every row of ``../shared/data/nasbench201/nb201.csv.gz`` and each dataset, compares
``NASBench201Space.count`` with the row's ``params_M_<dataset>`` / ``flops_M_<dataset>``, and
the cell our API index mapping gives with the row's ``arch``. Prints one line per dataset and
``mismatches=N/46875`` (0 expected); ``--no_cache`` builds every row's own network.

    python bench/nb201_cost_check.py [--csv PATH] [--no_cache] [--limit N]

Results: bench/README.md.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_CSV = REPO.parent / "shared" / "data" / "nasbench201" / "nb201.csv.gz"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csv", default=str(DEFAULT_CSV), help="the NB201 table (gzip CSV)")
    ap.add_argument("--no_cache", action="store_true",
                    help="build and hook every row's own network (slow)")
    ap.add_argument("--limit", type=int, default=0, help="check only the first N rows")
    args = ap.parse_args(argv)

    import torch

    from api.spaces import get_space

    torch.set_num_threads(1)
    path = Path(args.csv)
    if not path.is_file():
        print(f"error: {path} not found (the NAS-Bench-201 table; see shared/data/README.md)",
              file=sys.stderr)
        return 2
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    if args.limit:
        rows = rows[:args.limit]
    space = get_space("nas-bench-201")

    index_bad = 0
    for row in rows:
        if space.format(space.arch_at(int(row["index"]))) != row["arch"]:
            index_bad += 1
    print(f"index->arch mismatches={index_bad}/{len(rows)}")

    total_bad = 0
    total = 0
    for dataset in ("cifar10", "cifar100", "imagenet16"):
        start = time.time()
        bad = 0
        first = None
        for row in rows:
            cell = space.parse(row["arch"])
            params, flops = space.count(cell, dataset, cache=not args.no_cache)
            ours = (f"{params / 1e6:.6f}", f"{flops / 1e6:.5f}")
            theirs = (f"{float(row[f'params_M_{dataset}']):.6f}",
                      f"{float(row[f'flops_M_{dataset}']):.5f}")
            if ours != theirs:
                bad += 1
                if first is None:
                    first = (row["index"], row["arch"], ours, theirs)
        total_bad += bad
        total += len(rows)
        line = (f"{dataset}: mismatches={bad}/{len(rows)} ({time.time() - start:.1f}s, "
                f"{'every network built' if args.no_cache else 'summed from per-edge costs'})")
        if first:
            line += f"; first: index {first[0]} {first[1]} ours {first[2]} table {first[3]}"
        print(line, flush=True)
    print(f"mismatches={total_bad + index_bad}/{total}")
    return 0 if total_bad + index_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
