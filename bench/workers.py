"""Throughput of worker processes versus one in-process trainer on the same CNN search step.

    python bench/workers.py          # -> speedup workers=2 X.XX

Trains the first step's candidates of the paper's CNN search (complete 8-node v3 cell, proxy
skeleton) on a small real-data proxy: once in-process with all cores, once with 2 worker
processes splitting the cores. The worker pool is started (and warmed with one candidate)
before timing, as a search keeps it for all its steps. It also times the step with one
thread in-process, which bounds the ratio: W single-threaded workers can at best be W times
one single-threaded trainer.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from api.datasets import load_images, make_proxy
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.network import NetworkSpec
from api.spaces.autoshrink_cnn.ops import draw_ops
from api.search.evaluator import Task
from api.search.executors import InProcessExecutor, ProcessExecutor
from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig
from searching.shrink import candidate_seed


def step_tasks(nodes: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    graph = CellGraph.complete(nodes, draw_ops("v3", nodes, rng))
    edges = graph.edge_list
    order = rng.permutation(len(edges))[:k]
    tasks = []
    for n in order:
        cand = graph.remove_edge(*edges[n])
        tasks.append(Task(f"e{edges[n]}", cand, candidate_seed(seed, cand.canonical_hash())))
    return tasks


def timed(executor, evaluator, tasks) -> float:
    start = time.perf_counter()
    for _task, result in executor.run(evaluator, tasks):
        assert result.ok, result.error
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/cifar10-subset")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--proxy_train", type=int, default=1000)
    p.add_argument("--proxy_val", type=int, default=200)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--nodes", type=int, default=8)
    args = p.parse_args()
    data = make_proxy(load_images("cifar10", args.data), args.proxy_train, args.proxy_val, 0)
    cfg = CNNProxyTrainConfig(epochs=args.epochs, device="cpu")
    tasks = step_tasks(args.nodes, args.candidates, seed=0)
    cores = os.cpu_count() or 1

    single = CNNProxyEvaluator(data, NetworkSpec(), cfg)
    single.threads = cores
    timed(InProcessExecutor(), single, tasks[:1])  # warm-up
    t1 = timed(InProcessExecutor(), single, tasks)

    # The ceiling of the ratio: W single-threaded trainers can at best run W times as fast as
    # one single-threaded trainer, so 2 workers over 1 worker x 2 threads is bounded by
    # 2 x (time at 2 threads) / (time at 1 thread) -- by how well one trainer already uses
    # the second core.
    serial = CNNProxyEvaluator(data, NetworkSpec(), cfg)
    serial.threads = 1
    t_serial = timed(InProcessExecutor(), serial, tasks)

    multi = CNNProxyEvaluator(data, NetworkSpec(), cfg)
    multi.threads = max(1, cores // args.workers)
    with ProcessExecutor(args.workers) as ex:
        timed(ex, multi, tasks[:args.workers])  # start and warm the pool
        tw = timed(ex, multi, tasks)
    n = len(tasks)
    print(f"{n} candidates, {args.epochs} epoch(s) on {args.proxy_train}/{args.proxy_val} images, "
          f"{cores} cores")
    print(f"1 worker x {cores} threads: {t1:.1f}s ({3600 * n / t1:.0f} candidates/hour)")
    print(f"{args.workers} workers x {multi.threads} threads: {tw:.1f}s "
          f"({3600 * n / tw:.0f} candidates/hour)")
    print(f"1 worker x 1 thread: {t_serial:.1f}s; {cores} threads scale one trainer "
          f"{t_serial / t1:.2f}x, so {args.workers} single-threaded workers can reach at most "
          f"{min(args.workers, cores) * t1 / t_serial:.2f}x")
    print(f"speedup workers={args.workers} {t1 / tw:.2f}")


if __name__ == "__main__":
    main()
