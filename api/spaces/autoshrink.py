"""AutoShrink's two spaces (CNN and RNN cell DAGs) behind the common space interface.

The architecture is :class:`api.graph.CellGraph`: its text form is ``ops=... edges=...``, its
JSON the graph's dict (which also carries the network settings needed to rebuild it). The
RNN space's node ops (:data:`RNN_OPS`) and the search's op draw / ``--ops`` parsing live here
too; its language model is :class:`api.rnn.model.RNNModel`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from api.errors import UserError
from api.graph import CellGraph
from api.spaces.base import SearchSpace

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


class _AutoShrinkSpace(SearchSpace):
    cell_space = "cnn"

    def parse(self, text: str) -> CellGraph:
        return CellGraph.from_string(text, space=self.cell_space)

    def format(self, arch: CellGraph) -> str:
        return arch.to_string()

    def to_json(self, arch: CellGraph) -> Dict[str, Any]:
        return arch.to_dict()

    def from_json(self, data: Dict[str, Any]) -> CellGraph:
        return CellGraph.from_dict(data, source=f"{self.name} architecture")

    def looks_like(self, text: str) -> bool:
        return text.startswith("ops=")


class AutoShrinkCNNSpace(_AutoShrinkSpace):
    name = "autoshrink-cnn"
    kind = "cnn"
    cell_space = "cnn"
    ops = ("SepConv3x3", "SepConv5x5", "Conv1x1", "Conv3x3", "MBConv3x3_e3", "MBConv5x5_e3")

    def build_network(self, arch: CellGraph, dataset: str = "cifar10", **kwargs: Any):
        """The network the graph proposes (a preset's macro network, or a search's proxy
        skeleton), with ``kwargs`` as NetworkSpec overrides."""
        from api.network import NetworkSpec, build_network

        settings = arch.settings or {}
        proposed = settings.get("network")
        if not isinstance(proposed, dict):  # a preset holds NetworkSpec fields directly
            proposed = {k: v for k, v in settings.items()
                        if k in NetworkSpec.__dataclass_fields__}
        return build_network(arch, NetworkSpec.from_dict(dict(proposed, **kwargs)))


class AutoShrinkRNNSpace(_AutoShrinkSpace):
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
        from api.rnn_complexity import rnn_lm_params
        from api.spaces.darts_rnn import vocab_size

        V = vocab_size(dataset, ntokens)
        E = int(emsize or (arch.settings or {}).get("emsize") or 745)
        macs = 2 * E * 2 * E + arch.num_edges * E * 2 * E + E * V
        return rnn_lm_params(arch, ntoken=V, ninp=E, nhid=E), macs
