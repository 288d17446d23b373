"""Drawing NAS-Bench-201 cells: the 4-node DAG with each edge's op written on it (the
AutoShrink drawer, ``api/spaces/dag/graph_io.draw_graph``, puts ops on nodes; here they sit on
edges). Matplotlib only; ``none`` edges are drawn faint and dashed, as they carry nothing.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from api.spaces.nasbench201.cell import Cell

#: Nodes on a line, input 0 on the left, output 3 on the right; edges between neighbours are
#: straight, the two spanning two nodes bow above, 0->3 below.
POSITIONS = {0: (0.0, 0.0), 1: (1.0, 0.0), 2: (2.0, 0.0), 3: (3.0, 0.0)}
BOW = {1: 0.0, 2: -0.5, 3: 0.45}
SHORT = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1x1",
         "nor_conv_3x3": "conv3x3", "avg_pool_3x3": "pool3x3"}
COLOURS = {"none": "#bbbbbb", "skip_connect": "#2a9d8f", "nor_conv_1x1": "#e9c46a",
           "nor_conv_3x3": "#e76f51", "avg_pool_3x3": "#457b9d"}


def draw_cell(ax, cell: Cell, title: Optional[str] = None) -> None:
    """Draw ``cell`` on the matplotlib axes ``ax``."""
    from matplotlib.patches import FancyArrowPatch

    for frm, to, op in cell.edges():
        (x0, y0), (x1, y1) = POSITIONS[frm], POSITIONS[to]
        rad = BOW[to - frm]
        faint = op == "none"
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}",
                                     arrowstyle="-|>", mutation_scale=11,
                                     lw=0.8 if faint else 1.6, color=COLOURS[op],
                                     linestyle="--" if faint else "-", shrinkA=11, shrinkB=11,
                                     zorder=1))
        # the label near the arc's middle (the arc bows to the right of its direction)
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        dx, dy = x1 - x0, y1 - y0
        mx, my = mx + rad * dy * 0.5, my - rad * dx * 0.5
        ax.text(mx, my, SHORT[op], ha="center", va="center", fontsize=6.5,
                color="#888888" if faint else "black", zorder=3,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=COLOURS[op], lw=0.6))
    for node, (x, y) in POSITIONS.items():
        ax.scatter([x], [y], s=260, color="#9cc" if node in (0, 3) else "#cde",
                   edgecolors="#333", zorder=4)
        ax.text(x, y, "in" if node == 0 else ("out" if node == 3 else str(node)),
                ha="center", va="center", fontsize=6.5, zorder=5)
    ax.set_xlim(-0.3, 3.3)
    ax.set_ylim(-0.95, 0.8)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=7)


def draw_cells(cells: Sequence[Tuple[str, Cell]], columns: int = 4) -> bytes:
    """One PNG of ``(title, cell)`` panels, ``columns`` a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from api.search.report import png_bytes

    n = max(1, len(cells))
    cols = max(1, min(columns, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 1.9 * rows), squeeze=False)
    for k in range(rows * cols):
        ax = axes[k // cols][k % cols]
        if k < len(cells):
            draw_cell(ax, cells[k][1], cells[k][0])
        else:
            ax.axis("off")
    fig.tight_layout()
    return png_bytes(fig)
