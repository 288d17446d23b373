"""Parameter count of a ShrinkRNN language model, from the cell graph alone.

The LM: embedding ntoken x ninp, the cell's input map W0 (ninp + nhid) x 2 nhid,
one W_ij (nhid x 2 nhid) per counted edge i -> j, and a decoder tied to the embedding (only
its bias, ntoken, is new). A pure function of the graph, so tables can print the paper's
"24M" without building the model.

>>> from api.spaces.zoo import get_graph
>>> rnn_lm_params(get_graph("shrinkrnn"), ntoken=10000, ninp=745, nhid=745)
23000700
"""
from __future__ import annotations

from api.spaces.dag.graph import CellGraph


def rnn_lm_params(graph: CellGraph, ntoken: int, ninp: int, nhid: int, tied: bool = True) -> int:
    embedding = ntoken * ninp
    w0 = (ninp + nhid) * 2 * nhid
    edges = graph.num_edges * nhid * 2 * nhid
    decoder = ntoken + (0 if tied else ntoken * nhid)
    return embedding + w0 + edges + decoder
