"""Print the params/MACs columns of the paper's tables next to the paper's figures.

    python evaluation/complexity_table.py      (what scripts/table_complexity.sh runs)

CNN rows build ShrinkCNN-A/B from their presets and count at 224x224 (params exclude BN, the
paper's convention); the RNN row counts ShrinkRNN's LM (emsize = nhid = 745, 10k vocabulary,
tied weights) from its graph. Runs on a CPU in seconds; no dataset needed.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

from api.spaces.complexity import complexity
from api.errors import run_cli
from api.spaces.dag.graph_io import load_graph
from api.spaces.autoshrink_cnn.model_spec import ModelSpec
from api.spaces.autoshrink_cnn.network import NetworkSpec
from api.spaces.autoshrink_rnn.cost import rnn_lm_params

PAPER = {"ShrinkCNN-A (ReLU)": (3.6, 384), "ShrinkCNN-B (Swish)": (3.6, 384),
         "ShrinkRNN": (24.0, None)}
PTB_VOCAB = 10000


def complexity_rows() -> List[Dict]:
    rows = []
    for name, preset in (("ShrinkCNN-A (ReLU)", "shrinkcnn-a"),
                         ("ShrinkCNN-B (Swish)", "shrinkcnn-b")):
        graph = load_graph(preset)
        spec = NetworkSpec.from_dict(graph.settings)
        c = complexity(ModelSpec(graph, spec).build(), (3, spec.image_size, spec.image_size))
        rows.append({"model": name, "params_m": c.params / 1e6, "macs_m": c.macs / 1e6,
                     "params_bn_m": c.params_with_bn / 1e6})
    rnn = load_graph("shrinkrnn")
    nhid = int(rnn.settings["nhid"])
    rows.append({"model": "ShrinkRNN", "params_m": rnn_lm_params(rnn, PTB_VOCAB, nhid, nhid) / 1e6,
                 "macs_m": None, "params_bn_m": None})
    for row in rows:
        row["paper_params_m"], row["paper_macs_m"] = PAPER[row["model"]]
    return rows


def format_table(rows: List[Dict]) -> str:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| model               | params (M) | paper | MACs @224 (M) | paper | params+BN (M) |",
             "|---------------------|-----------:|------:|--------------:|------:|--------------:|"]
    for r in rows:
        lines.append(f"| {r['model']:<19} | {num(r['params_m'], '.3f'):>10} | "
                     f"{num(r['paper_params_m'], 'g'):>5} | {num(r['macs_m'], '.1f'):>13} | "
                     f"{num(r['paper_macs_m'], 'g'):>5} | {num(r['params_bn_m'], '.3f'):>13} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    print(format_table(complexity_rows()))


if __name__ == "__main__":
    run_cli(main)
