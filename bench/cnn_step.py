"""Milliseconds per training step of a CNN proxy candidate, by precision and memory layout.

    python bench/cnn_step.py [--nodes 8] [--batch_size 128] [--device auto] [--no_graphed]

The network is the reference search's first candidate (the complete 8-node v3 cell minus
edge 0->7 in the paper's proxy skeleton) on random 32x32 inputs, trained with Adam as the
proxy does. Each variant times its first step (lazy initialisation and, with
cudnn.benchmark, the autotuning of every convolution shape), runs warm-up steps, then takes
the median of timed steps (synchronised on CUDA); on CUDA it runs every variant with and
without cudnn.benchmark and counts the kernels one step launches, which tells a launch-bound
step (many small kernels) from a compute-bound one.

The ``graphed`` variants (CUDA only; skipped with a note elsewhere) replay the step as a CUDA
graph (api/cuda_graph.py, the proxy's ``--cuda_graphs``): the batch is copied into static
buffers and the whole forward, backward and capturable-Adam step is one graph launch. Their
"first step" is an eager warm-up step; the capture happens within the warm-up steps. Their
kernel count is what the profiler attributes to one replay.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from api.cuda_graph import GraphedStep
from api.distributed import resolve_device
from api.graph import CellGraph
from api.network import NetworkSpec, build_network
from api.ops import draw_ops


def train_step(model, opt, x, y, bf16: bool, amp_cache: bool = True) -> None:
    """One Adam step on (x, y); autocast's cast cache off where the step is captured."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16,
                        cache_enabled=amp_cache):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def make_step(model, opt, x, y, bf16: bool):
    return lambda: train_step(model, opt, x, y, bf16)


def make_graphed_step(model, opt, x, y, bf16: bool):
    """The step above replayed as a CUDA graph once warmed up (CUDA only)."""
    graphed = GraphedStep(lambda xs, ys: train_step(model, opt, xs, ys, bf16, amp_cache=False),
                          opt, x.device)
    return lambda: graphed(x, y)


def time_step(step, device: torch.device, warmup: int, repeats: int):
    """(ms of the first step: autotuning and lazy init included, median ms of the rest)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    step()
    sync()
    first = (time.perf_counter() - start) * 1000
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times) * 1000


def count_kernels(step) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no_graphed", action="store_true", help="skip the CUDA-graph variants")
    args = p.parse_args()
    device = resolve_device(args.device)
    graph = CellGraph.complete(args.nodes, draw_ops("v3", args.nodes, np.random.default_rng(0)))
    graph = graph.remove_edge(0, args.nodes - 1)
    x = torch.randn(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.batch_size,), device=device)
    variants = [("fp32", False, False, False), ("fp32 channels_last", False, True, False)]
    if device.type == "cuda":
        variants = [(n, b, c, bench) for bench in (False, True) for n, b, c, _ in
                    variants + [("bf16", True, False, False), ("bf16 channels_last", True, True,
                                                                False)]]
    graphed = device.type == "cuda" and not args.no_graphed
    if graphed:
        variants += [("graphed " + n, b, c, True) for n, b, c in
                     (("fp32", False, False), ("bf16", True, False))]
    elif not args.no_graphed:
        print(f"graphed variants: skipped (CUDA only; device is {device.type})")
    for name, bf16, cl, bench in variants:
        torch.backends.cudnn.benchmark = bench
        name += " +cudnn.benchmark" if bench else ""
        torch.manual_seed(0)
        fmt = torch.channels_last if cl else torch.contiguous_format
        model = build_network(graph, NetworkSpec()).to(device, memory_format=fmt)
        opt = torch.optim.Adam(model.parameters(), lr=4e-3)
        make = make_graphed_step if name.startswith("graphed") else make_step
        step = make(model, opt, x.contiguous(memory_format=fmt), y, bf16)
        first, ms = time_step(step, device, args.warmup, args.repeats)
        extra = f", {count_kernels(step)} kernels/step" if device.type == "cuda" else ""
        print(f"{name:36s} {ms:8.1f} ms/step ({args.batch_size * 1000 / ms:6.0f} img/s), "
              f"first step {first:7.0f} ms{extra}")


if __name__ == "__main__":
    main()
