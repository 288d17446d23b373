"""Milliseconds per training step of a CNN proxy candidate, by precision and memory layout.

    python bench/cnn_step.py [--nodes 8] [--batch_size 128] [--device auto] [--no_graphed]
                             [--fused_members 10]

The network is the reference search's first candidate (complete 8-node v3 cell minus edge
0->7) on random 32x32 inputs, trained with Adam as the proxy does: first-step time, then the
median of timed steps; on CUDA with and without cudnn.benchmark and with kernels per step.
``graphed`` variants (CUDA only) replay the step as a CUDA graph; ``fused kN`` variants train
N candidates of the first search step as one fused model (ms per candidate-step).

Results: bench/README.md.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from searching.fused.cuda_graph import GraphedStep
from api.train.distributed import resolve_device
from searching.fused.cnn_model import FusedCandidates
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.network import NetworkSpec, build_network
from api.spaces.autoshrink_cnn.ops import draw_ops
from searching.fused.cnn_trainer import FusedTrainStep, MemberAdam


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


def fused_variants(nodes: int, members: int, batch: int, device: torch.device, graphed: bool):
    """(name, step) of the fused variants: N members of the first step, each its own batch."""
    parent = CellGraph.complete(nodes, draw_ops("v3", nodes, np.random.default_rng(0)))
    edges = parent.edge_list
    picked = np.random.default_rng(0).permutation(len(edges))[:members]
    graphs = [parent.remove_edge(*edges[i]) for i in picked]
    M = len(graphs)
    x = torch.randn(M, batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (M, batch), device=device)
    out = []
    for graph_it in ((False, True) if graphed else (False,)):
        fused = FusedCandidates.from_members(parent, graphs, NetworkSpec(), range(M))[0]
        fused = fused.to(device).train()
        opt = MemberAdam(fused.param_groups(1e-5), M, 4e-3)
        step = FusedTrainStep(fused, opt, amp_cache=not graph_it)
        if graph_it:
            graphed_step = GraphedStep(step, opt, device)
            out.append((f"graphed fused k{M}", lambda g=graphed_step: g(x, y)))
        else:
            out.append((f"fused k{M}", lambda s=step: s(x, y)))
    return out, M


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--no_graphed", action="store_true", help="skip the CUDA-graph variants")
    p.add_argument("--fused_members", type=int, default=10,
                   help="candidates in the fused variants (0: skip them; 3 for a quick CPU run)")
    args = p.parse_args(argv)
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
    single = 0.0  # ms of the first (fp32) variant
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
        single = single or ms
        extra = f", {count_kernels(step)} kernels/step" if device.type == "cuda" else ""
        print(f"{name:36s} {ms:8.1f} ms/step ({args.batch_size * 1000 / ms:6.0f} img/s), "
              f"first step {first:7.0f} ms{extra}")
    if args.fused_members <= 0:
        return
    bench_modes = (False, True) if device.type == "cuda" else (False,)
    for bench in bench_modes:
        torch.backends.cudnn.benchmark = bench
        fused, M = fused_variants(args.nodes, args.fused_members, args.batch_size, device,
                                  graphed and bench)
        if not graphed and not args.no_graphed and bench == bench_modes[-1]:
            print("graphed fused: skipped (CUDA only)")
        for name, step in fused:
            name += " +cudnn.benchmark" if bench else ""
            first, ms = time_step(step, device, args.warmup, args.repeats)
            extra = f", {count_kernels(step)} kernels/step" if device.type == "cuda" else ""
            print(f"{name:36s} {ms:8.1f} ms/step, {ms / M:6.1f} ms/candidate-step "
                  f"({single / (ms / M):4.2f}x the fp32 step's rate), "
                  f"first step {first:7.0f} ms{extra}")


if __name__ == "__main__":
    main()
