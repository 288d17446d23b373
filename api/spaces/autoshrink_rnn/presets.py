"""ShrinkRNN, the paper's found 6-node recurrent cell, in the zoo."""
from __future__ import annotations

from api.spaces import zoo
from api.spaces.arch_io import Arch
from api.spaces.dag.graph import CellGraph

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


def _shrinkrnn() -> CellGraph:
    return CellGraph(SHRINKRNN_MASK, SHRINKRNN_OPS, space="rnn", settings=SHRINKRNN_SETTINGS)


zoo.register("shrinkrnn", lambda: Arch("autoshrink-rnn", _shrinkrnn()),
             dataset="ptb", test_ppl=56.5, source="AutoShrink (AAAI 2020)")
