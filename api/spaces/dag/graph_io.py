"""Reading and writing graph files safely.

``save_graph`` writes the pickle (the original's format: ``pickle.load`` gives an object with
``.mask`` and ``.ops_def``), a JSON twin and a PNG drawing, each atomically.
``load_graph`` accepts a pickle, a JSON file, a one-line text form or a preset name; pickles go
through a restricted unpickler that admits only the graph rebuild function, so a crafted file
cannot run code.
"""
from __future__ import annotations

import io
import json
import pickle
from pathlib import Path
from typing import Optional

from api.runs.atomic_io import atomic_pickle, atomic_write_bytes, atomic_write_text
from api.errors import UserError
from api.runs.file_checks import RefusedGlobal, is_file, other_kind, pickle_problem
from api.spaces.dag.graph import CellGraph

# "api.graph" is where the graph lived before the space packages: older pickles name it.
_ALLOWED_GLOBALS = {("api.spaces.dag.graph", "_rebuild_graph"), ("api.graph", "_rebuild_graph")}


class _GraphUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise RefusedGlobal(f"refusing to load global {module}.{name}")


def loads_graph(data: bytes, source: str = "graph") -> CellGraph:
    """Decode graph bytes: JSON, or a pickle through the restricted unpickler."""
    kind = other_kind(data)
    if kind is not None:
        raise UserError(f"{source} is {kind}, not a graph file (a search's graph-best or its "
                        ".json twin)")
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        try:
            return CellGraph.from_dict(json.loads(data.decode("utf-8")), source=source)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{source} is not valid JSON ({exc})") from exc
    if not stripped.startswith(b"\x80"):  # pickle protocol 2+
        raise UserError(f"{source} is neither JSON nor a pickle (it starts with {data[:8]!r}): "
                        "not a graph file")
    try:
        obj = _GraphUnpickler(io.BytesIO(data)).load()
    except RefusedGlobal as exc:
        raise UserError(f"{source} is not a safe AutoShrink graph file ({exc}); "
                        "use the graph's .json twin if you trust its origin") from exc
    except Exception as exc:  # truncated / random bytes raise many types
        raise UserError(f"{source} {pickle_problem(data, exc)}") from exc
    if not isinstance(obj, CellGraph):
        raise UserError(f"{source} does not hold an AutoShrink cell graph")
    return obj


def load_graph(spec: str) -> CellGraph:
    """Load a graph from a path (pickle or JSON), a preset name, or the one-line text form."""
    from api.spaces import zoo  # local import: the presets import this module's siblings

    presets = zoo.graph_presets()
    if spec in presets:
        return presets[spec]()
    if spec.startswith("ops="):
        return CellGraph.from_string(spec)
    path = Path(spec)
    if not is_file(spec):
        raise UserError(f"graph file {spec} not found (give a graph file, a .json twin, "
                        f"or one of the presets: {', '.join(presets)})")
    return loads_graph(path.read_bytes(), source=str(path))


def save_graph(graph: CellGraph, path: str, png: bool = True) -> None:
    """Write ``path`` (pickle), ``path.json`` and, optionally, ``path.png``."""
    atomic_pickle(path, graph)
    atomic_write_text(f"{path}.json", graph.to_json())
    if png:
        draw_graph(graph, f"{path}.png")


def draw_graph(graph: CellGraph, path: str, title: Optional[str] = None) -> None:
    """Draw the cell as a PNG: nodes on a line, counted edges as arcs, inactive nodes grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    n = graph.num_nodes
    active = set(graph.active_nodes) | {0}
    leaves = set(graph.leaves)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * n), 3.2))
    for i, j in graph.edge_list:
        rad = -0.25 - 0.08 * (j - i)
        ax.add_patch(FancyArrowPatch((i, 0), (j, 0), connectionstyle=f"arc3,rad={rad}",
                                     arrowstyle="-|>", mutation_scale=12, lw=1.2, color="#345",
                                     shrinkA=14, shrinkB=14))
    for j in range(n):
        colour = "#9cc" if j == 0 else ("#fc9" if j in leaves else "#cde")
        if j not in active:
            colour = "#eee"
        ax.scatter([j], [0], s=900, color=colour, edgecolors="#333", zorder=3)
        ax.text(j, 0, str(j), ha="center", va="center", zorder=4, fontsize=10)
        label = "in" if j == 0 else graph.ops_def[j]
        ax.text(j, -0.32, label, ha="center", va="top", fontsize=7, rotation=20)
    ax.set_xlim(-0.7, n - 0.3)
    ax.set_ylim(-0.8, 0.2 + 0.25 * n)
    ax.axis("off")
    ax.set_title(title or f"{graph.num_edges} edges, leaves {sorted(leaves)}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
