"""The model a final training builds: a cell graph inside an evaluation macro network.

A graph file says *which cell*; the network fields come from, weakest first: the trainer's own
macro network (ImageNet: the ShrinkCNN network; CIFAR: a stride-1 one); what the graph file
proposes (a preset's NetworkSpec fields in ``graph.settings``; of a search's proxy network in
``settings["network"]`` only the activation, as the proxy skeleton is not the retraining
network); flags given on the command line. ``build_imagenet.py`` writes the result as a model
spec JSON (graph + NetworkSpec + the L2 regulariser) for the trainers' ``--model_spec``;
checkpoints embed the same dict.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from torch import nn

from api.runs.atomic_io import atomic_write_json
from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.graph_io import load_graph
from api.spaces.autoshrink_cnn.network import NetworkSpec, build_network
from api.spaces.autoshrink_cnn.presets import SHRINKCNN_IMAGENET

FORMAT = "autoshrink-model-spec"
FORMAT_VERSION = 1
TF_L2 = 4e-5  # the paper's L2 weight, TF/Keras style (lambda * sum w^2)

# The trainers' own macro networks (step 1 above).
IMAGENET_BASE = dict(SHRINKCNN_IMAGENET, activation="relu")
# CIFAR: stride-1 stem, three stages at 32/16/8 px, no head conv; with the ShrinkCNN cell this
# is 1.92M params and 290M MACs (DARTS-sized nets are ~3M), so a 600-epoch run is affordable.
CIFAR_BASE = dict(scale=[3, 6, 12], pool=[1, 2, 2], replicate=[4, 4, 4], channel_scale=1.0,
                  stem_channels=48, stem_stride=1, head_channels=0, dropout=0.0, num_classes=10,
                  image_size=32, use_residual=True, activation="relu")

# Flag name -> NetworkSpec field, for the flags every evaluation CLI shares.
NETWORK_FLAGS = {"scale": "scale", "pool_size": "pool", "replicate": "replicate",
                 "channel_scale": "channel_scale", "width": "width",
                 "stem_channels": "stem_channels", "head_channels": "head_channels",
                 "activation": "activation", "use_residual": "use_residual",
                 "dropout": "dropout", "num_classes": "num_classes", "image_size": "image_size"}


@dataclass
class ModelSpec:
    """A cell graph, the NetworkSpec it is built in, and the L2 weight to train it with."""

    graph: CellGraph
    network: NetworkSpec
    regularizer: float = TF_L2
    extra: Dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        try:
            return build_network(self.graph, self.network)
        except ValueError as exc:  # unknown op names in a hand-made graph
            raise UserError(f"cannot build the network: {exc}") from exc

    def to_dict(self) -> Dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "graph": self.graph.to_dict(), "network": self.network.to_dict(),
                "regularizer": self.regularizer, **self.extra}

    @classmethod
    def from_dict(cls, data: Dict[str, Any], source: str = "model spec") -> "ModelSpec":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UserError(f"{source} is not an AutoShrink model spec "
                            "(write one with evaluation/cnn/build_imagenet.py --out)")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise UserError(f"{source} has model spec version {data.get('format_version')}; "
                            "upgrade AutoShrink to read it")
        try:
            graph = CellGraph.from_dict(data["graph"], source=source)
            network = NetworkSpec.from_dict(data["network"])
            regularizer = float(data.get("regularizer", TF_L2))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source} is a damaged model spec ({exc})") from exc
        extra = {k: v for k, v in data.items()
                 if k not in ("format", "format_version", "graph", "network", "regularizer")}
        return cls(graph, network, regularizer, extra)

    def save(self, path: str) -> None:
        atomic_write_json(path, self.to_dict())


def load_model_spec(path: str) -> ModelSpec:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"model spec {path} not found (write one with "
                        "evaluation/cnn/build_imagenet.py --out NETWORK.json)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"model spec {path} is not valid JSON ({exc})") from exc
    return ModelSpec.from_dict(data, source=str(p))


def proposed_network(graph: CellGraph) -> Dict[str, Any]:
    """NetworkSpec fields a graph file proposes for its evaluation network (see module doc)."""
    settings = graph.settings or {}
    proxy = settings.get("network")
    if isinstance(proxy, dict):
        return {"activation": proxy["activation"]} if proxy.get("activation") else {}
    return {k: v for k, v in settings.items() if k in NetworkSpec.__dataclass_fields__}


def resolve_network(graph: CellGraph, base: Dict[str, Any], overrides: Dict[str, Any],
                    inherit: Optional[Iterable[str]] = None) -> NetworkSpec:
    """``base`` < the graph's proposal (only ``inherit`` fields, all if None) < ``overrides``."""
    if graph.space != "cnn":
        raise UserError(f"the graph is a {graph.space!r} cell; CNN trainers need a CNN cell")
    fields = dict(base)
    proposal = proposed_network(graph)
    if inherit is not None:
        keep = set(inherit)
        proposal = {k: v for k, v in proposal.items() if k in keep}
    fields.update(proposal)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return NetworkSpec.from_dict(fields)


def add_network_args(parser: argparse.ArgumentParser, defaults_note: str) -> None:
    """The macro-network flags shared by build_imagenet, train_imagenet and train_cifar.

    Every default is None: an unset flag falls back to the graph file and then to the
    trainer's macro network (``defaults_note`` tells the user which).
    """
    g = parser.add_argument_group("network", f"unset flags: {defaults_note}")
    g.add_argument("--scale", type=float, nargs="+", help="node width multiplier per stage (x16)")
    g.add_argument("--pool_size", "--pool", dest="pool_size", type=int, nargs="+",
                   help="max-pool size at the first cell of each stage")
    g.add_argument("--replicate", type=int, nargs="+", help="cells per stage")
    g.add_argument("--channel_scale", type=float, help="global channel multiplier")
    g.add_argument("--width", type=int, help="parallel cells per stage position")
    g.add_argument("--stem_channels", type=int, help="channels of the stem conv")
    g.add_argument("--head_channels", type=int, help="1x1 head conv channels (0: none)")
    g.add_argument("--activation", choices=["relu", "swish"], help="relu (A) or swish (B)")
    g.add_argument("--use_residual", action=argparse.BooleanOptionalAction, default=None,
                   help="residual connection around every cell")
    g.add_argument("--dropout", type=float, help="dropout before the classifier")
    g.add_argument("--num_classes", type=int, help="classifier outputs")
    g.add_argument("--image_size", type=int, help="input resolution")


def network_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    return {field: getattr(args, flag, None) for flag, field in NETWORK_FLAGS.items()}


def model_spec_from_args(args: argparse.Namespace, base: Dict[str, Any],
                         inherit: Optional[Iterable[str]] = None) -> ModelSpec:
    """``--model_spec`` (flags still override it) or ``--graph_path`` + network flags."""
    overrides = network_overrides(args)
    regularizer = getattr(args, "regularizer", None)
    if getattr(args, "model_spec", None):
        spec = load_model_spec(args.model_spec)
        fields = spec.network.to_dict()
        fields.update({k: v for k, v in overrides.items() if v is not None})
        spec.network = NetworkSpec.from_dict(fields)
        if regularizer is not None:
            spec.regularizer = regularizer
        return spec
    if not getattr(args, "graph_path", None):
        raise UserError("give --graph_path (a graph file, .json twin, text form or preset "
                        "such as shrinkcnn-a) or --model_spec")
    graph = load_graph(args.graph_path)
    network = resolve_network(graph, base, overrides, inherit)
    return ModelSpec(graph, network, TF_L2 if regularizer is None else regularizer)
