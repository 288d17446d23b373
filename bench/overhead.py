"""Overhead of graph-built networks over hand-written static modules of the same architecture.

    python bench/overhead.py            # -> overhead cnn=X.XX rnn=Y.YY

CNN: the ShrinkCNN-A cell stack at 32x32 with a small width, built from the graph by
``api.spaces.autoshrink_cnn.network`` versus ``bench.static_models.StaticShrinkCNN``. RNN: the 6-node ShrinkRNN cell
at nhid 100 built from the graph versus a hand-unrolled cell. Each figure is the median of
interleaved repeats of forward+backward time (graph / static), measured in one run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api.spaces.complexity import count_params  # noqa: E402
from api.spaces.dag.graph_io import load_graph  # noqa: E402
from api.spaces.autoshrink_cnn.network import NetworkSpec, build_network  # noqa: E402
from static_models import StaticShrinkCNN  # noqa: E402


def time_step(model, make_batch, loss_fn, iters: int) -> float:
    x, y = make_batch()
    for _ in range(2):  # warm-up
        loss_fn(model, x, y).backward()
    start = time.perf_counter()
    for _ in range(iters):
        model.zero_grad(set_to_none=True)
        loss_fn(model, x, y).backward()
    return (time.perf_counter() - start) / iters


def ratio(graph_model, static_model, make_batch, loss_fn, repeats: int, iters: int) -> float:
    ratios = []
    for _ in range(repeats):  # interleaved, so machine noise hits both alike
        g = time_step(graph_model, make_batch, loss_fn, iters)
        s = time_step(static_model, make_batch, loss_fn, iters)
        ratios.append(g / s)
    return statistics.median(ratios)


def cnn_overhead(repeats: int, iters: int) -> float:
    graph = load_graph("shrinkcnn-a")
    spec = NetworkSpec(scale=[0.5, 1, 2], pool=[1, 2, 2], replicate=[1, 2, 2],
                       channel_scale=1.0, stem_channels=16, image_size=32, num_classes=10)
    built, static = build_network(graph, spec), StaticShrinkCNN(spec)
    assert count_params(built) == count_params(static), "static model differs from the graph"
    fmt = torch.channels_last
    built, static = built.to(memory_format=fmt), static.to(memory_format=fmt)

    def batch():
        return (torch.randn(64, 3, 32, 32).contiguous(memory_format=fmt),
                torch.randint(0, 10, (64,)))

    def loss(model, x, y):
        return torch.nn.functional.cross_entropy(model(x), y)

    return ratio(built, static, batch, loss, repeats, iters)


def rnn_overhead(repeats: int, iters: int) -> float:
    try:
        from static_rnn import rnn_models  # the RNN pair lives beside the RNN model
    except ImportError:
        return float("nan")
    built, static, batch, loss = rnn_models(nhid=100)
    return ratio(built, static, batch, loss, repeats, iters)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    cnn = cnn_overhead(args.repeats, args.iters)
    rnn = rnn_overhead(args.repeats, args.iters)
    print(f"threads {torch.get_num_threads()}, median of {args.repeats} interleaved repeats "
          f"of {args.iters} fwd+bwd steps")
    print(f"overhead cnn={cnn:.2f} rnn={rnn:.2f}")


if __name__ == "__main__":
    main()
