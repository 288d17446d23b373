"""The paper's found cells, shipped as presets every script accepts in place of a graph file.

ShrinkCNN-A/B share one cell (edges 0->1, 0->2, 0->3, 1->3, 0->4, 2->4; ops 1-3 SepConv3x3,
4 Conv1x1) in the ImageNet macro network of the paper; A uses ReLU, B uses Swish. ShrinkRNN is
the 6-node recurrent cell of the paper.
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from api.errors import UserError
from api.graph import CellGraph

SHRINKCNN_EDGES = [(0, 1), (0, 2), (0, 3), (1, 3), (0, 4), (2, 4)]
SHRINKCNN_OPS = ["input", "SepConv3x3", "SepConv3x3", "SepConv3x3", "Conv1x1"]

# The ImageNet macro network of ShrinkCNN (api.network.NetworkSpec fields).
SHRINKCNN_IMAGENET = dict(
    scale=[0.5, 1, 2, 4, 8], pool=[1, 2, 2, 2, 2], replicate=[1, 3, 4, 6, 4],
    channel_scale=1.4, stem_channels=44, stem_stride=2, head_channels=1280, dropout=0.2,
    num_classes=1001, image_size=224, use_residual=True, bn_momentum=0.001, bn_eps=1e-3)

SHRINKRNN_MASK = [
    [0, 1, 1, 1, 1, 1],
    [0, 0, 0, 1, 1, 1],
    [0, 0, 0, 0, 1, 1],
    [0, 0, 0, 0, 1, 1],
    [0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
]
SHRINKRNN_OPS = ["tanh", "identity", "sigmoid", "sigmoid", "tanh", "identity"]
SHRINKRNN_SETTINGS = dict(emsize=745, nhid=745, nhidlast=745)


def _shrinkcnn(activation: str) -> CellGraph:
    mask = np.zeros((5, 5), dtype=np.int64)
    for i, j in SHRINKCNN_EDGES:
        mask[i, j] = 1
    return CellGraph(mask, SHRINKCNN_OPS, space="cnn",
                     settings=dict(SHRINKCNN_IMAGENET, activation=activation))


def _shrinkrnn() -> CellGraph:
    return CellGraph(SHRINKRNN_MASK, SHRINKRNN_OPS, space="rnn", settings=SHRINKRNN_SETTINGS)


PRESETS: Dict[str, Callable[[], CellGraph]] = {
    "shrinkcnn-a": lambda: _shrinkcnn("relu"),
    "shrinkcnn-b": lambda: _shrinkcnn("swish"),
    "shrinkrnn": _shrinkrnn,
}


def get(name: str) -> CellGraph:
    try:
        return PRESETS[name.lower()]()
    except KeyError:
        raise UserError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
