"""Test (and validation) perplexity of a trained RNN language model, as the papers report them.

    python evaluation/rnn/test.py --checkpoint runs/shrinkrnn [--data ./data/penn] \
        [--out runs/shrinkrnn/test.json]

``--checkpoint`` is a run folder (its best.pt, the best validation epoch) or a checkpoint
file. Test perplexity uses batch 1 (DARTS' protocol: one stream, the hidden state carried
across the whole split); validation uses batch 10. A last.pt taken after the switch to ASGD
is evaluated with ASGD's averaged weights, as during training. The checkpoint records the
architecture (an AutoShrink cell graph, or a DARTS/ENAS cell's space and JSON form) and the
network's sizes, so the model is rebuilt from it alone.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, Optional, Sequence  # noqa: E402

from api.progress import progress  # noqa: E402

from api.runs.atomic_io import atomic_write_json  # noqa: E402
from api.train.checkpoint import BEST, load_checkpoint  # noqa: E402
from api.train.distributed import resolve_device  # noqa: E402
from api.errors import UserError, run_cli  # noqa: E402
from api.lm.data import Corpus, batchify  # noqa: E402
from evaluation.rnn.lm import (averaged_state_dict, build_model, check_vocabulary,  # noqa: E402
                               evaluate, perplexity)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", default="./runs/shrinkrnn",
                   help="run folder (uses its best.pt) or a .pt file")
    p.add_argument("--data", default=None,
                   help="PTB folder (default: the --data of the training run)")
    p.add_argument("--batch_size", type=int, default=1, help="test batch size")
    p.add_argument("--eval_batch_size", type=int, default=10, help="validation batch size")
    p.add_argument("--bptt", type=int, default=35, help="evaluation window")
    p.add_argument("--splits", nargs="+", default=["valid", "test"], choices=["valid", "test"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def resolve_checkpoint(path: str) -> Path:
    p = Path(path)
    if p.is_dir():
        if not (p / BEST).is_file():
            raise UserError(f"--checkpoint {p}: no {BEST} in this folder (is it a run of "
                            "evaluation/rnn/train.py that finished an epoch?)")
        return p / BEST
    if not p.is_file():
        raise UserError(f"--checkpoint {p} not found (give a run folder or a .pt file)")
    return p


def test_rnn(args: argparse.Namespace) -> Dict[str, Any]:
    for flag in ("batch_size", "eval_batch_size", "bptt"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    path = resolve_checkpoint(args.checkpoint)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(path)
    if "vocab" not in ckpt:
        raise UserError(f"{path} is not a checkpoint of evaluation/rnn/train.py")
    data = args.data or ckpt.get("args", {}).get("data") or "./data/penn"
    corpus = Corpus(data)
    check_vocabulary(ckpt["vocab"], corpus.dictionary.idx2word, data)
    model = build_model(ckpt["model_spec"])
    weights = ckpt["model"]
    if ckpt.get("state", {}).get("optimizer_kind") == "asgd":  # last.pt under ASGD
        model.load_state_dict(weights)
        weights = averaged_state_dict(model, ckpt["optimizer"])
    model.load_state_dict(weights)
    model.to(device)
    epoch = ckpt.get("epoch", ckpt.get("state", {}).get("epoch"))
    result: Dict[str, Any] = {"checkpoint": str(path), "epoch": epoch, "data": str(data)}
    for split in args.splits:
        batch = args.batch_size if split == "test" else args.eval_batch_size
        stream = batchify(getattr(corpus, split), batch, device)
        start = time.perf_counter()
        with progress(total=-(-(stream.size(0) - 1) // args.bptt), desc=f"{split} (batch {batch})",
                  leave=False, disable=args.quiet) as bar:
            loss = evaluate(model, stream, args.bptt, bar)
        result[split] = {"loss": loss, "ppl": perplexity(loss), "batch_size": batch,
                         "tokens": (stream.size(0) - 1) * batch,
                         "seconds": time.perf_counter() - start}
        print(f"{split} ppl {perplexity(loss):.2f} (loss {loss:.4f}, batch {batch})", flush=True)
    if args.out:
        atomic_write_json(args.out, result)
    return result


def main(argv: Optional[Sequence[str]] = None) -> None:
    test_rnn(build_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
