"""AutoShrink's RNN space: recurrent cell DAGs, their node ops, the search's op draw and
``--ops`` parsing; the language model is :class:`api.spaces.autoshrink_rnn.model.RNNModel`."""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.space import DagSpace

#: The node ops of AutoShrink RNN cells, in their canonical order (the recurrence groups a
#: node's out-edges by this order; the op draw indexes it).
RNN_OPS = ("tanh", "relu", "sigmoid", "identity")


def draw_rnn_ops(num_nodes: int, rng: np.random.Generator) -> List[str]:
    """One op per node drawn uniformly from RNN_OPS with the seeded RNG (node 0's is ignored)."""
    return [RNN_OPS[int(i)] for i in rng.integers(0, len(RNN_OPS), num_nodes)]


def parse_rnn_ops(text: str, num_nodes: int) -> List[str]:
    """``--ops`` value: comma-separated ops for nodes 1..N-1 (or 0..N-1) -> full ops_def."""
    ops = [o.strip().lower() for o in text.split(",") if o.strip()]
    bad = sorted({o for o in ops if o not in RNN_OPS})
    if bad:
        raise UserError(f"--ops: unknown op(s) {', '.join(bad)}; choose from {', '.join(RNN_OPS)}")
    if len(ops) == num_nodes - 1:
        ops = ["identity"] + ops  # node 0's entry is ignored
    if len(ops) != num_nodes:
        raise UserError(f"--ops gives {len(ops)} ops; a {num_nodes}-node cell needs "
                        f"{num_nodes - 1} (nodes 1..{num_nodes - 1})")
    return ops


class AutoShrinkRNNSpace(DagSpace):
    name = "autoshrink-rnn"
    kind = "rnn"
    cell_space = "rnn"
    ops = RNN_OPS

    def count(self, arch: CellGraph, dataset: str = "ptb", ntokens: Optional[int] = None,
              emsize: Optional[int] = None, **unused: Any) -> Tuple[int, int]:
        """(params, MACs of one word) of the ShrinkRNN LM: the embedding (tied decoder, its
        bias counted), W0, one nhid x 2 nhid matrix per counted edge; MACs are the cell's and
        the decoder's matmuls for one step of batch 1. ``emsize`` defaults to the graph's own
        (ShrinkRNN: 745)."""
        from api.spaces.autoshrink_rnn.cost import rnn_lm_params
        from api.spaces.darts_rnn import vocab_size

        V = vocab_size(dataset, ntokens)
        E = int(emsize or (arch.settings or {}).get("emsize") or 745)
        macs = 2 * E * 2 * E + arch.num_edges * E * 2 * E + E * V
        return rnn_lm_params(arch, ntoken=V, ninp=E, nhid=E), macs
