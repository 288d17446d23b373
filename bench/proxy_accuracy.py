"""Train one CNN proxy candidate on real data and print its learning curve.

    python bench/proxy_accuracy.py --data ../shared/data/cifar10-subset --nodes 8 --epochs 5
    python bench/proxy_accuracy.py --nodes 3 --proxy_train 1000 --proxy_val 1000 --epochs 8

Checks that the proxy estimator learns (the complete N-node cell in the paper's proxy skeleton)
and how long an epoch takes. Every epoch is validated twice from the same weights: with the
BatchNorm running averages (``raw``, the original's evaluation) and after recalibrating them
(``recal``, the default); the last lines replay the paper's early stops on each column.

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
from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig, stop_reason


class BothValidations(CNNProxyEvaluator):
    """Records the un-recalibrated validation of every epoch before recalibrating."""

    raw: list

    def _recalibrate(self, model, data, gen, amp, fmt) -> int:
        self.raw.append(self._validate(model, self._batches[1], amp, fmt))
        return super()._recalibrate(model, data, gen, amp, fmt)


def replay_stops(cfg: CNNProxyTrainConfig, train_losses, vals):
    """(best accuracy, stop epoch, reason) the paper's early stops give on this curve."""
    best_acc, best_epoch = 0.0, 0
    for epoch, (train_loss, (val_loss, val_acc)) in enumerate(zip(train_losses, vals), 1):
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
        reason = stop_reason(cfg, epoch, best_epoch, best_acc, train_loss, val_loss)
        if reason:
            return best_acc, epoch, reason
    return best_acc, len(vals), "max_epochs"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/cifar10-subset")
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--proxy_train", type=int, default=5000)
    p.add_argument("--proxy_val", type=int, default=1000)
    p.add_argument("--bn_recal_batches", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    splits = load_images("cifar10", args.data)
    data = make_proxy(splits, args.proxy_train, args.proxy_val, args.seed)
    ops = draw_ops("v3", args.nodes, np.random.default_rng(args.seed))
    graph = CellGraph.complete(args.nodes, ops)
    paper = CNNProxyTrainConfig(epochs=args.epochs)
    # Disable the early stops so every requested epoch is measured; they are replayed below.
    cfg = CNNProxyTrainConfig(epochs=args.epochs, patience=args.epochs + 1, min_acc_epoch=0,
                           overfit_ratio=float("inf"), bn_recal_batches=args.bn_recal_batches,
                           device=args.device)
    ev = BothValidations(data, NetworkSpec(num_classes=data.num_classes), cfg)
    ev.raw = []
    start = time.perf_counter()
    result = ev.evaluate(graph, args.seed)
    elapsed = time.perf_counter() - start
    train_losses = [row["train_loss"] for row in result.curve]
    recal = [(row["val_loss"], row["val_acc"]) for row in result.curve]
    for row, (raw_loss, raw_acc) in zip(result.curve, ev.raw):
        print(f"epoch {row['epoch']:2d} train_loss {row['train_loss']:.3f} | raw val_loss "
              f"{raw_loss:.3f} val_acc {raw_acc:.4f} | recal val_loss {row['val_loss']:.3f} "
              f"val_acc {row['val_acc']:.4f} | t {row['seconds']:.0f}s")
    print(f"threads {torch.get_num_threads()} MACs {result.macs / 1e6:.1f}M "
          f"params {result.params / 1e6:.3f}M")
    for name, vals in (("raw", ev.raw), ("recal", recal)):
        best, stop, reason = replay_stops(paper, train_losses, vals)
        print(f"{name:5s} with the paper's early stops: best_val_acc={best:.4f} "
              f"stops at epoch {stop} ({reason})")
    print(f"proxy nodes={args.nodes} train={args.proxy_train} epochs={args.epochs} "
          f"best_val_acc_raw={max(a for _, a in ev.raw):.4f} "
          f"best_val_acc_recal={result.metrics['accuracy']:.4f} "
          f"s_per_epoch={elapsed / len(result.curve):.1f}")


if __name__ == "__main__":
    main()
