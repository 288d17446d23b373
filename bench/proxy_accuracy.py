"""Train one CNN proxy candidate on real data and print its learning curve.

    python bench/proxy_accuracy.py --data ../shared/data/cifar10-subset --nodes 8 --epochs 5

Checks that the proxy estimator learns (the complete N-node cell in the paper's proxy
skeleton, 5,000 / 1,000 images) and how long an epoch takes on this machine.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from api.datasets import load_images, make_proxy
from api.graph import CellGraph
from api.network import NetworkSpec
from api.ops import draw_ops
from searching.cnn.proxy import CNNProxyEvaluator, ProxyTrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/cifar10-subset")
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--proxy_train", type=int, default=5000)
    p.add_argument("--proxy_val", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    splits = load_images("cifar10", args.data)
    data = make_proxy(splits, args.proxy_train, args.proxy_val, args.seed)
    ops = draw_ops("v3", args.nodes, np.random.default_rng(args.seed))
    graph = CellGraph.complete(args.nodes, ops)
    # Disable the early stops so every requested epoch is measured.
    cfg = ProxyTrainConfig(epochs=args.epochs, patience=args.epochs + 1, min_acc_epoch=0,
                           overfit_ratio=float("inf"), device=args.device)
    ev = CNNProxyEvaluator(data, NetworkSpec(num_classes=data.num_classes), cfg)
    start = time.perf_counter()
    result = ev.evaluate(graph, args.seed)
    for row in result.curve:
        print(f"epoch {row['epoch']:2d} train_loss {row['train_loss']:.3f} "
              f"val_loss {row['val_loss']:.3f} val_acc {row['val_acc']:.4f} "
              f"t {row['seconds']:.0f}s")
    print(f"threads {torch.get_num_threads()} MACs {result.macs / 1e6:.1f}M "
          f"params {result.params / 1e6:.3f}M")
    print(f"proxy nodes={args.nodes} epochs={args.epochs} best_val_acc={result.metrics['accuracy']:.4f} "
          f"s_per_epoch={(time.perf_counter() - start) / len(result.curve):.1f}")


if __name__ == "__main__":
    main()
