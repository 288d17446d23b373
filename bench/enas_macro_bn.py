"""What the ENAS macro search's BN-statistics options cost: seconds per child step with
``--macro_branches all`` / ``sampled`` / ``last`` and per reward forward with
``--macro_reward_bn running`` / ``batch``, medians of repeats at a tiny CPU scale:

    python bench/enas_macro_bn.py [--batch 32] [--C 12] [--layers 6] [--repeats 15]
        [--threads 1] [--out figures.json]

Every mode runs the same sampled architectures (one seeded controller) on random images of
CIFAR's shape. Results: docs/fidelity/enas.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Dict, Optional, Sequence

from api.errors import run_cli


def measure(batch: int = 32, C: int = 12, layers: int = 6, repeats: int = 15,
            warmup: int = 3, threads: int = 1, seed: int = 0) -> Dict[str, Any]:
    """Median seconds per child step (each ``--macro_branches`` value) and per reward forward
    (each ``--macro_reward_bn`` value)."""
    import torch

    from api.spaces.enas_macro.arch import MACRO_BRANCHES
    from api.spaces.enas_macro.network import EnasMacroSupernet
    from searching.enas.cnn_controllers import MacroController
    from searching.enas.cnn_method import batch_statistics, child_step

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    controller = MacroController(lstm_size=32, num_layers=layers)
    with torch.no_grad():
        archs = [controller.sample(gen).arch for _ in range(warmup + repeats)]
    x = torch.randn(batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    torch.manual_seed(seed)
    net = EnasMacroSupernet(C=C, layers=layers, keep_prob=0.9)
    state = net.state_dict()
    out: Dict[str, Any] = {"batch": batch, "C": C, "layers": layers, "repeats": repeats,
                           "threads": threads, "child_step_s": {}, "reward_forward_s": {}}
    for mode in MACRO_BRANCHES:
        net.load_state_dict(state)
        net.branches = mode
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        times = []
        for i, arch in enumerate(archs):
            net.train()
            start = time.perf_counter()
            child_step(net, opt, x, y, arch, 0.0, "tf", 5.0)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        out["child_step_s"][mode] = statistics.median(times)
    net.load_state_dict(state)
    net.branches = "sampled"
    for mode in ("running", "batch"):
        times = []
        for i, arch in enumerate(archs):
            net.eval()
            start = time.perf_counter()
            with torch.no_grad(), batch_statistics(net, mode == "batch"):
                net(x, arch)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        out["reward_forward_s"][mode] = statistics.median(times)
    return out


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--C", type=int, default=12)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="also write the figures as JSON")
    a = p.parse_args(argv)
    r = measure(a.batch, a.C, a.layers, a.repeats, threads=a.threads)
    for k, v in r["child_step_s"].items():
        print(f"child step, --macro_branches {k}: {v:.4f} s")
    for k, v in r["reward_forward_s"].items():
        print(f"reward forward, --macro_reward_bn {k}: {v:.4f} s")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(r, f, indent=1)
    return r


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
