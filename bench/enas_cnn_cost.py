"""Measured cost of an ENAS CNN search at its paper settings, projected to the whole search
(for the search-cost table):

    python bench/enas_cnn_cost.py --cnn_space micro [--child_steps 3] [--controller_steps 1]
        [--device auto] [--out cost.json]

Times the search's own code (:class:`~searching.enas.cnn_method.EnasCNN`, official sizes) on
random images of CIFAR's shape, child and controller steps (or single rewarded samples) after a warm-up, and projects them
over the official epochs, steps per epoch and derive samples.

Results: bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from types import SimpleNamespace
from typing import Any, Dict, Optional, Sequence

from api.errors import run_cli


def measure(space: str = "micro", child_steps: int = 3, controller_steps: int = 1,
            device: str = "auto", train_images: int = 45000,
            overrides: Optional[Dict[str, Any]] = None,
            controller_samples: int = 0) -> Dict[str, Any]:
    """Seconds per child step and per controller step at the paper settings (``overrides``:
    other values of the CNN flags, e.g. ``batch_size``, for tests), and the projected hours
    of the whole search. Each timed call is listed (``child_step_times``, ``sample_times``:
    per rewarded sample) after its warm-up call (``*_warmup_seconds``). ``controller_samples``
    > 0 times that many single rewarded samples (each with its own controller update) instead
    of ``controller_steps`` whole steps, a step being ``num_aggregate`` samples."""
    import torch

    from api.train.distributed import resolve_device
    from api.spaces import get_space
    from searching.enas.cnn_method import EnasCNN
    from searching.enas.cnn_search import build_controller, resolve_cnn_args
    from searching.enas.config import build_parser
    from api.machine import device_name
    from searching.oneshot.trainer import OneShotConfig

    args = build_parser().parse_args(["--network_type", "cnn", "--cnn_space", space])
    args.seed = 1
    for key, value in (overrides or {}).items():
        setattr(args, key, value)
    resolve_cnn_args(args)
    dev = resolve_device(device)
    torch.manual_seed(0)
    kwargs = dict(C=args.child_out_filters, layers=args.child_num_layers,
                  keep_prob=args.child_keep_prob)
    if space == "micro":
        kwargs.update(auxiliary=True, drop_path_keep_prob=1.0)
    net = get_space(f"enas-{space}").supernet("cifar10", **kwargs).to(dev)
    bs = args.batch_size
    config = OneShotConfig(space=f"enas-{space}", epochs=args.max_epoch, batch_size=bs,
                           lr=args.child_lr_max, nesterov=True, grad_clip=5.0,
                           weight_decay=2 * args.child_l2_reg)
    w_opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                            weight_decay=config.weight_decay)
    method = EnasCNN(build_controller(args, space), space, child_lr_max=0.05,
                     child_lr_min=5e-4, child_t0=10, child_t_mul=2,
                     aux_weight=0.4 if space == "micro" else 0.0,
                     controller_optim="adam", controller_lr=args.controller_lr,
                     controller_lr_cosine=False, controller_lr_max=None, controller_lr_min=0.0,
                     controller_steps=1, num_aggregate=args.controller_num_aggregate,
                     entropy_coeff=1e-4, baseline_decay=0.99,
                     skip_weight=0.8 if space == "macro" else 0.0, controller_grad_clip=0.0,
                     derive_num_sample=0, seed=1)
    method.bind(net, w_opt, config)
    x = torch.randn(bs, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (bs,), device=dev)
    feed = SimpleNamespace(val_iter=SimpleNamespace(next=lambda: (x, y)))

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(fn, n: int, warm=None):
        """(warm-up seconds, [seconds of each of n timed calls])."""
        t0 = time.perf_counter()
        (warm or fn)()
        sync()
        first, each = time.perf_counter() - t0, []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            sync()
            each.append(time.perf_counter() - t0)
        return first, each

    child_warm, child_times = timed(lambda: method.step(net, (x, y), None, 0, 0), child_steps)
    child = sum(child_times) / len(child_times)
    agg = args.controller_num_aggregate

    def one_sample() -> None:  # one rewarded sample and its controller update
        method.hp["num_aggregate"] = 1
        method.epoch_end(net, feed, 0)
        method.hp["num_aggregate"] = agg

    if controller_samples:  # single samples: a controller step is num_aggregate of them
        sample_warm, sample_times = timed(one_sample, controller_samples)
        ctrl = agg * sum(sample_times) / len(sample_times)
    else:
        sample_warm, ctrl_times = timed(lambda: method.epoch_end(net, feed, 0),
                                        controller_steps, one_sample)
        sample_times = [t / agg for t in ctrl_times]
        ctrl = sum(ctrl_times) / len(ctrl_times)
    steps_per_epoch = math.ceil(train_images / bs)
    epoch = (steps_per_epoch * child + args.controller_max_step * ctrl
             + args.derive_num_sample * ctrl / agg)
    measured = (child_warm + sum(child_times) + sample_warm
                + sum(sample_times) * (1 if controller_samples else agg))
    return {"method": f"enas-{space}", "task": "cnn", "device": device_name(dev),
            "batch_size": bs, "filters": args.child_out_filters,
            "child_layers": args.child_num_layers, "seconds_per_child_step": child,
            "seconds_per_controller_step": ctrl,
            "samples_per_controller_step": agg,
            "child_steps_per_epoch": steps_per_epoch,
            "controller_steps_per_epoch": args.controller_max_step,
            "derive_samples_per_epoch": args.derive_num_sample,
            "child_warmup_seconds": child_warm, "child_step_times": child_times,
            "sample_warmup_seconds": sample_warm, "sample_times": sample_times,
            "epochs": args.max_epoch, "seconds_per_epoch": epoch,
            "hours": epoch * args.max_epoch / 3600.0,
            "measured_fraction": measured / max(1e-9, epoch * args.max_epoch)}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(prog="cnn_cost.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--cnn_space", default="micro", choices=("micro", "macro"))
    p.add_argument("--child_steps", type=int, default=3)
    p.add_argument("--controller_steps", type=int, default=1)
    p.add_argument("--controller_samples", type=int, default=0,
                   help="time this many single rewarded samples instead of whole controller "
                        "steps (0: whole steps)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="also write the figures here (JSON)")
    a = p.parse_args(argv)
    result = measure(a.cnn_space, max(1, a.child_steps), max(1, a.controller_steps), a.device,
                     controller_samples=max(0, a.controller_samples))
    print(json.dumps(result, indent=1))
    if a.out:
        from api.runs.atomic_io import atomic_write_json

        atomic_write_json(a.out, result)
    return result


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
