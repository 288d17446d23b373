"""AutoShrink's CNN space: cell DAGs of convolution nodes inside the proxy or ImageNet network."""
from __future__ import annotations

from typing import Any

from api.spaces.dag.graph import CellGraph
from api.spaces.dag.space import DagSpace


class AutoShrinkCNNSpace(DagSpace):
    name = "autoshrink-cnn"
    kind = "cnn"
    cell_space = "cnn"
    ops = ("SepConv3x3", "SepConv5x5", "Conv1x1", "Conv3x3", "MBConv3x3_e3", "MBConv5x5_e3")

    def build_network(self, arch: CellGraph, dataset: str = "cifar10", **kwargs: Any):
        """The network the graph proposes (a preset's macro network, or a search's proxy
        skeleton), with ``kwargs`` as NetworkSpec overrides."""
        from api.spaces.autoshrink_cnn.network import NetworkSpec, build_network

        settings = arch.settings or {}
        proposed = settings.get("network")
        if not isinstance(proposed, dict):  # a preset holds NetworkSpec fields directly
            proposed = {k: v for k, v in settings.items()
                        if k in NetworkSpec.__dataclass_fields__}
        return build_network(arch, NetworkSpec.from_dict(dict(proposed, **kwargs)))
