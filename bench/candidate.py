"""Seconds per candidate at the paper's proxy settings, and the projected search wall-clock.

    python bench/candidate.py [--fused K]  # -> cnn_candidate_s=X rnn_candidate_s=Y

CNN: a candidate of the reference search (complete 8-node v3 cell minus one edge) on 5,000 /
1,000 CIFAR-10 images, up to 20 epochs with the paper's early stops. RNN: the complete 6-node
cell minus one edge on penn_proxy for 10 epochs. The projection counts a reference search's
candidate trainings (CNN 235, RNN 95) on one worker. ``--max_epochs`` caps slow runs (then
projected from seconds per epoch); ``--cuda_graphs`` uses the CUDA-graph step; ``--fused K``
also trains K first-step candidates as one fused group.

Results: bench/README.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from api.datasets import load_images, make_proxy
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.network import NetworkSpec
from api.spaces.autoshrink_cnn.ops import draw_ops
from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig
from searching.fused.graphed_proxy import GraphedCNNProxyEvaluator


def reference_candidates(e0: int, k: int, threshold: int) -> int:
    """Candidate trainings of a search removing one edge per step from e0 down to threshold."""
    return sum(min(k, e) for e in range(e0, threshold, -1))


def cnn_candidate(args) -> tuple:
    data = make_proxy(load_images("cifar10", args.cifar), 5000, 1000, 0)
    graph = CellGraph.complete(8, draw_ops("v3", 8, np.random.default_rng(0))).remove_edge(0, 7)
    epochs = min(20, args.max_epochs)
    proxy = GraphedCNNProxyEvaluator if args.cuda_graphs else CNNProxyEvaluator
    ev = proxy(data, NetworkSpec(), CNNProxyTrainConfig(epochs=epochs, device=args.device))
    start = time.perf_counter()
    result = ev.evaluate(graph, 0)
    seconds = time.perf_counter() - start
    # A capped run that did not stop early is projected to the full 20 epochs.
    projected = result.epochs == epochs < 20
    per_candidate = seconds / result.epochs * 20 if projected else seconds
    return per_candidate, projected, result


def time_fused_group(train_fused, ev, parent: CellGraph, k: int, epochs: int, full: int,
                     cuda_graphs: bool = False):
    """(projected seconds per candidate, projected?, results) of k candidates of a search's
    first step (``parent`` minus k of its edges, drawn as a step draws them, seed 0; seeds
    0..k-1) trained as one fused group for at most ``epochs``. A capped group whose last
    member ran all the capped epochs is projected to ``full`` epochs from its s/epoch."""
    edges = parent.edge_list
    picked = np.random.default_rng(0).permutation(len(edges))[:k]
    graphs = [parent.remove_edge(*edges[i]) for i in picked]
    start = time.perf_counter()
    results = train_fused(ev, parent, graphs, list(range(len(graphs))), cuda_graphs=cuda_graphs)
    seconds = time.perf_counter() - start
    last = max(r.epochs for r in results)
    projected = last == epochs < full
    group = seconds / last * full if projected else seconds
    return group / len(graphs), projected, results


def cnn_fused_group(args) -> tuple:
    from searching.fused.cnn_trainer import train_fused

    data = make_proxy(load_images("cifar10", args.cifar), 5000, 1000, 0)
    parent = CellGraph.complete(8, draw_ops("v3", 8, np.random.default_rng(0)))
    epochs = min(20, args.max_epochs)
    ev = CNNProxyEvaluator(data, NetworkSpec(), CNNProxyTrainConfig(epochs=epochs,
                                                                    device=args.device))
    return time_fused_group(train_fused, ev, parent, args.fused, epochs, 20, args.cuda_graphs)


def rnn_candidate(args) -> tuple:
    try:
        from rnn_reference import bench_candidate
    except ImportError:
        return float("nan"), False, None
    return bench_candidate(args.ptb, max_epochs=min(10, args.max_epochs), device=args.device)


def rnn_fused_group(args) -> tuple:
    from rnn_reference import reference_evaluator, reference_graph
    from searching.fused.rnn_trainer import train_fused

    epochs = min(10, args.max_epochs)
    ev = reference_evaluator(args.ptb, epochs, args.device)
    return time_fused_group(train_fused, ev, reference_graph(), args.fused, epochs, 10)


def report_fused(task: str, per: float, projected: bool, results, metric: str, full: int,
                 searched: int) -> None:
    values = ", ".join(f"{r.metrics[metric]:.3f}" if r.ok else r.status for r in results)
    print(f"{task} fused group of {len(results)}: epochs {[r.epochs for r in results]}, "
          f"{metric} [{values}], {per * len(results):.1f}s per group, {per:.1f}s per candidate"
          f"{f' (projected to {full} epochs)' if projected else ''}; reference search "
          f"{searched} candidates -> {searched * per / 3600:.2f} h on one worker "
          f"({3600 / per:.0f} candidates/h)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cifar", default="../shared/data/cifar10-subset")
    p.add_argument("--ptb", default="../shared/data/penn_proxy")
    p.add_argument("--device", default="auto")
    p.add_argument("--max_epochs", type=int, default=20)
    p.add_argument("--skip_cnn", action="store_true")
    p.add_argument("--cuda_graphs", action="store_true",
                   help="CNN candidate with the CUDA-graph training step")
    p.add_argument("--fused", type=int, default=0, metavar="K",
                   help="also time K CNN and K RNN candidates trained as one fused group each")
    args = p.parse_args()
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else (
        "cpu" if args.device == "auto" else args.device)
    args.device = device
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"CPU x{torch.get_num_threads()} threads"
    cnn_s, cnn_proj, cnn_res = (float("nan"), False, None) if args.skip_cnn else cnn_candidate(args)
    rnn_s, rnn_proj, rnn_res = rnn_candidate(args)
    n_cnn, n_rnn = reference_candidates(28, 10, 0), reference_candidates(15, 10, 4)
    print(f"device: {name}")
    if cnn_res is not None:
        print(f"CNN candidate: {cnn_res.epochs} epochs, val acc {cnn_res.metrics['accuracy']:.3f}, "
              f"{cnn_s:.1f}s{' (projected to 20 epochs)' if cnn_proj else ''}; "
              f"reference search {n_cnn} candidates -> {n_cnn * cnn_s / 3600:.2f} h on one worker"
              f" ({3600 / cnn_s:.0f} candidates/h{', CUDA graphs' if args.cuda_graphs else ''})")
    fused_s = float("nan")
    if args.fused > 0 and not args.skip_cnn:
        fused_s, proj, res = cnn_fused_group(args)
        report_fused("CNN", fused_s, proj, res, "accuracy", 20, n_cnn)
    if rnn_res is not None:
        print(f"RNN candidate: {rnn_res.epochs} epochs, val ppl "
              f"{rnn_res.metrics['perplexity']:.1f}, {rnn_s:.1f}s"
              f"{' (projected to 10 epochs)' if rnn_proj else ''}; reference search {n_rnn} "
              f"candidates -> {n_rnn * rnn_s / 3600:.2f} h on one worker")
    rnn_fused_s = float("nan")
    if args.fused > 0 and rnn_res is not None:
        rnn_fused_s, proj, res = rnn_fused_group(args)
        report_fused("RNN", rnn_fused_s, proj, res, "perplexity", 10, n_rnn)
    fused = (f" cnn_fused_candidate_s={fused_s:.1f} rnn_fused_candidate_s={rnn_fused_s:.1f}"
             if args.fused > 0 else "")
    print(f"cnn_candidate_s={cnn_s:.1f} rnn_candidate_s={rnn_s:.1f}{fused}")


if __name__ == "__main__":
    main()
