"""AutoShrink's two spaces (CNN and RNN cell DAGs) behind the common space interface.

The architecture is :class:`api.graph.CellGraph`: its text form is ``ops=... edges=...``, its
JSON the graph's dict (which also carries the network settings needed to rebuild it).
"""
from __future__ import annotations

from typing import Any, Dict

from api.graph import CellGraph
from api.spaces.base import SearchSpace


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
    ops = ("tanh", "relu", "sigmoid", "identity")
