"""The space interface shared by AutoShrink's two spaces: the architecture is a cell graph.

Its text form is ``ops=... edges=...``; its JSON is the graph's dict, which also carries the
network settings needed to rebuild it.
"""
from __future__ import annotations

from typing import Any, Dict

from api.spaces.base import SearchSpace
from api.spaces.dag.graph import CellGraph


class DagSpace(SearchSpace):
    """A space whose architecture is a :class:`CellGraph`; ``cell_space`` says which kind."""

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
        """``ops=...`` whose node ops (node 0's is the input) are this space's: the CNN and RNN
        cells share the text form, their ops tell them apart."""
        if not text.startswith("ops="):
            return False
        ops = text.split()[0][len("ops="):].split(",")[1:]
        return all(op in self.ops for op in ops)
