"""Build a ShrinkCNN-style ImageNet network from a cell graph: print its size, write its spec.

    python evaluation/cnn/build_imagenet.py --graph_path shrinkcnn-a --scale 0.5 1 2 4 8 \
        --channel_scale 1.4 --replicate 1 3 4 6 4 --pool_size 1 2 2 2 2 --use_residual \
        --image_size 224 [--activation swish] [--out model_spec.json]

Prints parameters (without and with BN, the paper counts without) and MACs at --image_size,
and writes a model spec JSON (graph + network + L2 weight) that train_imagenet.py --model_spec
builds from. Unset network flags come from a preset graph, else from the ShrinkCNN network.
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from api.spaces.complexity import complexity
from api.errors import run_cli
from api.spaces.autoshrink_cnn.model_spec import (IMAGENET_BASE, TF_L2, ModelSpec, add_network_args,
                            model_spec_from_args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--graph_path", required=True,
                   help="graph file (pickle or .json), one-line text form, or a preset: "
                        "shrinkcnn-a, shrinkcnn-b")
    p.add_argument("--regularizer", type=float, default=TF_L2,
                   help="L2 weight, TF/Keras style (lambda * sum w^2 = PyTorch weight_decay "
                        "2 * lambda); recorded in the spec")
    p.add_argument("--out", default="model_spec.json", help="where to write the model spec")
    add_network_args(p, "from a preset graph, else the ShrinkCNN ImageNet network "
                        "(scale 0.5 1 2 4 8, channel_scale 1.4, replicate 1 3 4 6 4, "
                        "pool 1 2 2 2 2, stem 44/2, head 1280, 1001 classes, 224 px)")
    return p


def build_imagenet(args: argparse.Namespace) -> ModelSpec:
    spec = model_spec_from_args(args, IMAGENET_BASE)
    net = spec.network
    c = complexity(spec.build(), (net.in_channels, net.image_size, net.image_size))
    spec.extra["complexity"] = {"params": c.params, "params_with_bn": c.params_with_bn,
                                "macs": c.macs, "image_size": net.image_size}
    print(f"cell: {spec.graph!r}")
    print(f"network: node channels {net.node_channels()}, replicate {net.replicate}, "
          f"pool {net.pool}, activation {net.activation}, {net.num_classes} classes")
    print(f"params: {c.params / 1e6:.3f}M excluding BN, {c.params_with_bn / 1e6:.3f}M with BN")
    print(f"MACs: {c.macs / 1e6:.1f}M at {net.image_size}x{net.image_size}")
    spec.save(args.out)
    print(f"wrote {args.out}")
    return spec


def main(argv: Optional[Sequence[str]] = None) -> None:
    build_imagenet(build_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
