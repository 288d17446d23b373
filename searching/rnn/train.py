"""AutoShrink RNN cell search (CLI).

    python searching/rnn/train.py --nodes 6 --data ./data/penn_proxy/ \
        --emb_path ./searching/rnn/w2v.pkl --emsize 100 --nhidlast 100 --lr 20 --clip 0.25 \
        --epochs 10 --batch_size 128

Starts from the complete DAG on ``--nodes`` nodes (node ops drawn from tanh, relu, sigmoid,
identity with the seeded RNG, or fixed with ``--ops``) and removes one edge per step, training
``--max_steps`` (k) candidate language models per step on the proxy corpus, until
round(0.25 * E0) edges remain. Writes graph-best, graph-<ratio>, candidates.jsonl, logs and
plots into ``--save``. Make ``--emb_path`` with ``searching/rnn/preprocess.py``.
"""
from __future__ import annotations

import os

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. Between its
# multi-threaded matmuls a candidate runs thousands of small single-threaded ops; spinning
# threads then take a core from them (or from other processes): 1.35x slower epochs measured
# on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

from api.errors import run_cli  # noqa: E402
from api.runs.run_folder import given_flags  # noqa: E402
from searching.runner import add_runtime_flags, add_search_flags  # noqa: E402
# build_components is re-exported for searching/random_search/random_search.py
from searching.rnn.autoshrink_rnn import build_components, search_rnn  # noqa: E402,F401
from api.spaces.autoshrink_rnn.space import RNN_OPS  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("search space")
    g.add_argument("--nodes", type=int, default=6, help="nodes N of the cell DAG (N=6: 15 edges)")
    g.add_argument("--ops", default=None,
                   help=f"fix the node ops instead of drawing them: comma-separated, one per "
                        f"node 1..N-1, from {', '.join(RNN_OPS)}")
    g.add_argument("--prob", type=float, default=1.0,
                   help="probability of each edge in the initial DAG (1.0: complete)")
    g = p.add_argument_group("language model")
    g.add_argument("--data", default="./data/penn_proxy",
                   help="PTB-format corpus folder (train.txt, valid.txt, test.txt)")
    g.add_argument("--emb_path", default="none",
                   help="word vectors from preprocess.py (GloVe through --vectors for the "
                        "paper's setting), or 'none' for random U(-0.5, 0.5) initialisation: "
                        "offline Word2Vec vectors trained on the proxy corpus measured worse "
                        "than random (val ppl 590.7 vs 427-438)")
    g.add_argument("--emsize", type=int, default=100, help="embedding size")
    g.add_argument("--nhid", type=int, default=None, help="cell state size (default: --emsize)")
    g.add_argument("--nhidlast", type=int, default=None,
                   help="size of the last (only) layer; the decoder is tied to the embedding, "
                        "so it must equal --emsize (default: --emsize)")
    for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
        g.add_argument(f"--{name}", type=float, default=0.0,
                       help="DARTS dropout (0 during search)")
    add_search_flags(p, "save", "./search-rnn", keep_fraction=0.25, efficiency_weight=1.0,
                     score_help="score = (200 - ppl) * 0.25 - w * (log10(FLOPs) - 6)")
    g = p.add_argument_group("proxy training (paper defaults)")
    g.add_argument("--epochs", type=int, default=10, help="max epochs per candidate")
    g.add_argument("--lr", type=float, default=20.0, help="SGD lr (scaled by seq_len / bptt)")
    g.add_argument("--clip", type=float, default=0.25, help="gradient norm clipping")
    g.add_argument("--batch_size", type=int, default=128)
    g.add_argument("--eval_batch_size", type=int, default=256)
    g.add_argument("--bptt", type=int, default=35,
                   help="sequence length (half of it with probability 0.05)")
    g.add_argument("--wdecay", type=float, default=0.0, help="SGD weight decay")
    g.add_argument("--patience", type=int, default=4, help="epochs without val improvement")
    g.add_argument("--fused", action="store_true",
                   help="train each step's candidates as one fused model (searching/rnn/"
                        "fused_proxy.py: batched matmuls over members; meant for a GPU, where "
                        "its speed is unmeasured; slower than separate training on a CPU; "
                        "results equal the unfused ones up to float rounding)")
    g.add_argument("--cuda_graphs", action="store_true",
                   help="with --fused on CUDA: replay the fused training step as one CUDA graph "
                        "(windows padded to --bptt, every member computed at every step; GPU "
                        "speed unmeasured; elsewhere the steps run eagerly and one line says so)")
    add_runtime_flags(p, g)
    return p


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    search_rnn(parser.parse_args(argv), given_flags(parser, argv))


if __name__ == "__main__":
    run_cli(main)
