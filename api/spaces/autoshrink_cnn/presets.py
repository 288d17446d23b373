"""ShrinkCNN-A/B, the paper's found CNN cells, in the zoo.

Both share one cell (edges 0->1, 0->2, 0->3, 1->3, 0->4, 2->4; ops 1-3 SepConv3x3, 4 Conv1x1)
in the ImageNet macro network of the paper; A uses ReLU, B uses Swish.
"""
from __future__ import annotations

import numpy as np

from api.spaces import zoo
from api.spaces.arch_io import Arch
from api.spaces.dag.graph import CellGraph

SHRINKCNN_EDGES = [(0, 1), (0, 2), (0, 3), (1, 3), (0, 4), (2, 4)]
SHRINKCNN_OPS = ["input", "SepConv3x3", "SepConv3x3", "SepConv3x3", "Conv1x1"]

# The ImageNet macro network of ShrinkCNN (api.spaces.autoshrink_cnn.network.NetworkSpec fields).
SHRINKCNN_IMAGENET = dict(
    scale=[0.5, 1, 2, 4, 8], pool=[1, 2, 2, 2, 2], replicate=[1, 3, 4, 6, 4],
    channel_scale=1.4, stem_channels=44, stem_stride=2, head_channels=1280, dropout=0.2,
    num_classes=1001, image_size=224, use_residual=True, bn_momentum=0.001, bn_eps=1e-3)


def _shrinkcnn(activation: str) -> CellGraph:
    mask = np.zeros((5, 5), dtype=np.int64)
    for i, j in SHRINKCNN_EDGES:
        mask[i, j] = 1
    return CellGraph(mask, SHRINKCNN_OPS, space="cnn",
                     settings=dict(SHRINKCNN_IMAGENET, activation=activation))


zoo.register("shrinkcnn-a", lambda: Arch("autoshrink-cnn", _shrinkcnn("relu")),
             dataset="imagenet", params_M=3.6, macs_M=384, top1=73.9,
             source="AutoShrink (AAAI 2020)")
zoo.register("shrinkcnn-b", lambda: Arch("autoshrink-cnn", _shrinkcnn("swish")),
             dataset="imagenet", params_M=3.6, macs_M=384, top1=75.1,
             source="AutoShrink (AAAI 2020)")
