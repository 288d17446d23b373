"""Train a found RNN cell as a language model on Penn Treebank (the paper's ShrinkRNN row).

    python evaluation/rnn/train.py --arch shrinkrnn --data ./data/penn --output runs/shrinkrnn

Why this loop is not :class:`api.train.trainer.Trainer`: its optimizer changes class mid-run
(SGD to ASGD, validating on the averaged weights), the lr is rescaled every step by the drawn
window length, and best.pt is kept by validation loss; the shared loop has one fixed optimizer
and scheduler and top-k evaluation.
See docs/evaluation.md; fidelity notes: docs/fidelity/autoshrink.md.
"""
from __future__ import annotations

import os

# Before torch loads OpenMP: idle threads sleep rather than spin (see searching/rnn/train.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, Optional, Sequence, Set  # noqa: E402

import torch  # noqa: E402
from api.progress import progress, say  # noqa: E402

from api.runs.atomic_io import write_jsonl  # noqa: E402
from api.train.checkpoint import (BEST, LAST, capture_rng, load_checkpoint, restore_rng,  # noqa: E402
                            save_checkpoint)
from api.train.distributed import resolve_device  # noqa: E402
from api.errors import UserError, run_cli  # noqa: E402
from api.train.metrics import MetricsLog  # noqa: E402
from api.lm.data import Corpus, batchify, get_batch  # noqa: E402
from api.lm.embedding import embedding_matrix, load_w2v  # noqa: E402
from api.spaces.autoshrink_rnn.cost import rnn_lm_params  # noqa: E402
from api.train.trainer import add_run_flags, check_output  # noqa: E402
from api.runs.run_folder import (Projection, announce, counted, given_flags,  # noqa: E402
                                  on_interrupt, resume_args, write_args)
from evaluation.rnn.lm import (AUTOSHRINK_RNN, DROPOUTS, RNN_PRESETS,  # noqa: E402
                               arch_of, averaged_weights, build_model, check_vocabulary,
                               count_lm_params, evaluate, load_rnn_arch, make_optimizer,
                               model_spec, perplexity, regularized_loss, sample_seq_len,
                               should_switch_to_asgd)

HIDDEN_POLICY = "zero at the start of every epoch"
# Flags a resumed run may change besides api.runs.run_folder.RUN_FLAGS; any other flag given with
# --resume must match the run unless --force (api.runs.run_folder.resume_args). --epochs is free here:
# no schedule depends on it.
RUNTIME_FLAGS = {"data", "epochs", "emb_path"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--arch", "--graph_path", dest="arch", default="shrinkrnn",
                   help="the RNN cell: a file any search wrote (a graph-best, its .json twin, "
                        "an arch-best), a space string (AutoShrink ops=..., DARTS "
                        f"Genotype(recurrent=...), ENAS integers) or a preset ({RNN_PRESETS})")
    g.add_argument("--emsize", type=int, default=745, help="embedding size = cell state size")
    g.add_argument("--emb_path", default="none",
                   help="w2v.pkl from searching/rnn/preprocess.py (--emsize-dimensional), "
                        "or none for random initialisation")
    for name, value, what in (("dropout", 0.75, "cell outputs"), ("dropouth", 0.25, "h"),
                              ("dropoutx", 0.75, "x (cell input)"),
                              ("dropouti", 0.2, "embedding outputs"),
                              ("dropoute", 0.1, "whole words")):
        g.add_argument(f"--{name}", type=float, default=value, help=f"dropout on {what}")
    g = p.add_argument_group("optimisation")
    g.add_argument("--data", default="./data/penn", help="PTB folder: train/valid/test.txt")
    g.add_argument("--epochs", type=int, default=3000)
    g.add_argument("--batch_size", type=int, default=64)
    g.add_argument("--eval_batch_size", type=int, default=10)
    g.add_argument("--bptt", type=int, default=35, help="mean sequence length (DARTS random)")
    g.add_argument("--lr", type=float, default=20.0, help="SGD / ASGD lr")
    g.add_argument("--clip", type=float, default=0.25, help="gradient norm clipping")
    g.add_argument("--wdecay", type=float, default=8e-7, help="weight decay")
    g.add_argument("--alpha", type=float, default=0.0, help="AR on the dropped outputs")
    g.add_argument("--beta", type=float, default=1e-3, help="TAR on the raw cell outputs")
    g.add_argument("--nonmono", type=int, default=5,
                   help="switch to ASGD when val loss is worse than the best of all but the "
                        "last NONMONO evaluations")
    g.add_argument("--asgd_epoch", type=int, default=0,
                   help="also switch to ASGD after this epoch whatever the rule (0: off)")
    add_run_flags(p, "./runs/shrinkrnn", image_model=False)
    return p


def check_args(args: argparse.Namespace) -> None:
    for flag in ("emsize", "epochs", "batch_size", "eval_batch_size"):
        if getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.bptt < 2:
        raise UserError(f"--bptt must be at least 2, got {args.bptt}")
    for flag in ("lr", "clip"):
        if not getattr(args, flag) > 0:
            raise UserError(f"--{flag} must be positive, got {getattr(args, flag)}")
    for flag in ("wdecay", "alpha", "beta", "nonmono", "asgd_epoch"):
        if getattr(args, flag) < 0:
            raise UserError(f"--{flag} must not be negative, got {getattr(args, flag)}")
    for flag in DROPOUTS:
        if not 0.0 <= getattr(args, flag) < 1.0:
            raise UserError(f"--{flag} must be in [0, 1), got {getattr(args, flag)}")


def arch_record(arch) -> Dict[str, Any]:
    """How final_metrics.json names the architecture: AutoShrink's ``graph`` dict as before,
    or the space, its JSON form and its text form."""
    if arch.space == AUTOSHRINK_RNN:
        return {"graph": arch.value.to_dict()}
    return {"space": arch.space, "arch": arch.to_json()["arch"], "text": arch.text}


def train_epoch(model, opt, data: torch.Tensor, args, gens: Dict[str, torch.Generator],
                bar) -> float:
    """One pass in DARTS' random-length windows; returns the mean cross-entropy (no AR/TAR)."""
    model.train()
    hidden = model.init_hidden(args.batch_size)
    base_lr = opt.param_groups[0]["lr"]
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    tokens, i, batch = 0, 0, 0
    while i < data.size(0) - 2:
        seq_len = sample_seq_len(gens["seq"], args.bptt)
        for group in opt.param_groups:
            group["lr"] = base_lr * seq_len / args.bptt
        inputs, targets = get_batch(data, i, seq_len)
        ce, loss, hidden = regularized_loss(model, inputs, targets, hidden.detach(),
                                            gens["dropout"], args.alpha, args.beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        total += ce.detach().double() * targets.numel()
        tokens += targets.numel()
        i += seq_len
        batch += 1
        bar.update(min(seq_len, data.size(0) - 1 - bar.n))
        if batch % 50 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{float(total) / tokens:.3f}")
    for group in opt.param_groups:
        group["lr"] = base_lr
    return float(total) / max(tokens, 1)


def save_best(output: Path, model, opt, spec, vocab, epoch: int, val_loss: float,
              args: argparse.Namespace) -> None:
    with averaged_weights(model, opt):
        weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    save_checkpoint(output / BEST, {"model": weights, "model_spec": spec, "vocab": vocab,
                                    "epoch": epoch, "val_loss": val_loss, "args": vars(args),
                                    "averaged": isinstance(opt, torch.optim.ASGD)})


def train_rnn(args: argparse.Namespace, given: Optional[Set[str]] = None) -> Dict[str, Any]:
    output = Path(args.output)
    check_output(output, args.resume)
    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(output / LAST)
        args, forced = resume_args(args, ckpt["args"], given or set(), RUNTIME_FLAGS,
                                    args.output, "output")
        for change in forced:
            print(f"warning: --force: continuing with {change}", flush=True)
    check_args(args)
    device = resolve_device(args.device)
    arch = load_rnn_arch(args.arch) if ckpt is None else None
    corpus = Corpus(args.data)
    vocab = corpus.dictionary.idx2word
    torch.manual_seed(args.seed)
    if ckpt is None:
        spec = model_spec(arch, corpus.ntokens, args.emsize, args.emsize,
                          {k: getattr(args, k) for k in DROPOUTS})
        emb = None
        if str(args.emb_path).lower() != "none":
            emb = embedding_matrix(vocab, args.emsize, load_w2v(args.emb_path), args.seed)
    else:
        spec, emb = ckpt["model_spec"], None
        arch = arch_of(spec, source=str(output / LAST))
        check_vocabulary(ckpt["vocab"], vocab, args.data)
    model = build_model(spec, emb).to(device)
    if arch.space == AUTOSHRINK_RNN:
        params = rnn_lm_params(arch.value, corpus.ntokens, spec["emsize"], spec["nhid"])
        described = repr(arch.value)
    else:
        params = count_lm_params(model)
        described = f"{arch.space}: {arch.text}"
    train = batchify(corpus.train, args.batch_size, device)
    valid = batchify(corpus.valid, args.eval_batch_size, device)
    gens = {"seq": torch.Generator().manual_seed(args.seed),
            "dropout": torch.Generator(device=device).manual_seed(args.seed + 1)}
    state = {"epoch": 0, "best_val_loss": math.inf, "best_epoch": 0, "history": [],
             "asgd_epoch": None, "optimizer_kind": "sgd"}
    log = MetricsLog(output)
    resumed = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        state = dict(ckpt["state"])
        opt = make_optimizer(state["optimizer_kind"], model.parameters(), args.lr, args.wdecay)
        opt.load_state_dict(ckpt["optimizer"])
        restore_rng(ckpt["rng"])
        for name, gen in gens.items():
            gen.set_state(ckpt["generators"][name])
        log.keep_until(state["epoch"])  # epochs logged after last.pt are trained again
        resumed = (f"last.pt holds epoch {state['epoch']} ({state['optimizer_kind'].upper()}); "
                   f"epochs {state['epoch'] + 1} to {args.epochs} train now (the epoch in "
                   "flight when it stopped starts again)")
    else:
        opt = make_optimizer("sgd", model.parameters(), args.lr, args.wdecay)
        output.mkdir(parents=True, exist_ok=True)
        write_jsonl(log.jsonl, [])
        write_args(output, args)
    announce(output, f"{counted(args.epochs, 'epoch')} over {corpus.train.numel()} training "
                     "tokens", resumed)
    projection = Projection("epoch", str(device))
    saved = {"epoch": state["epoch"]}
    on_interrupt(lambda: (
        f"no epoch has finished in {output}: run the same command again, without --resume"
        if saved["epoch"] == 0 else
        f"last.pt in {output} holds epoch {saved['epoch']}; --resume trains the epoch after it "
        "again from its start"))
    print(f"{described}\n{params / 1e6:.2f}M params, {corpus.ntokens} words, "
          f"{corpus.train.numel()} train tokens, on {device}", flush=True)

    epochs = progress(range(state["epoch"] + 1, args.epochs + 1), desc="epochs",
                  initial=state["epoch"], total=args.epochs, disable=args.quiet)
    for epoch in epochs:
        start = time.perf_counter()
        kind = state["optimizer_kind"]
        with progress(total=train.size(0) - 1, desc=f"epoch {epoch}", unit="row", leave=False,
                  disable=args.quiet) as bar:
            train_loss = train_epoch(model, opt, train, args, gens, bar)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - start
        if not math.isfinite(train_loss):
            raise UserError(f"training diverged in epoch {epoch} (loss {train_loss}); "
                            f"last.pt holds epoch {state['epoch']}: lower --lr or --clip")
        with averaged_weights(model, opt):
            val_loss = evaluate(model, valid, args.bptt)
        if val_loss < state["best_val_loss"]:
            state["best_val_loss"], state["best_epoch"] = val_loss, epoch
            save_best(output, model, opt, spec, vocab, epoch, val_loss, args)
        switch = kind == "sgd" and (should_switch_to_asgd(state["history"], val_loss,
                                                          args.nonmono)
                                    or epoch == args.asgd_epoch)
        if kind == "sgd":
            state["history"].append(val_loss)
        if switch:
            opt = make_optimizer("asgd", model.parameters(), args.lr, args.wdecay)
            state["optimizer_kind"], state["asgd_epoch"] = "asgd", epoch
        seconds = time.perf_counter() - start
        rows = (train.size(0) - 1) * train.size(1)
        record = {"epoch": epoch, "train_loss": train_loss, "train_ppl": perplexity(train_loss),
                  "val_loss": val_loss, "val_ppl": perplexity(val_loss),
                  "best_val_ppl": perplexity(state["best_val_loss"]), "lr": args.lr,
                  "optimizer": kind, "switched_to_asgd": switch,
                  "tokens_per_s": rows / train_seconds, "seconds": seconds}
        log.log(record)
        state["epoch"] = epoch
        save_checkpoint(output / LAST, {
            "model": model.state_dict(), "model_spec": spec, "vocab": vocab,
            "optimizer": opt.state_dict(), "state": state, "args": vars(args),
            "rng": capture_rng(), "generators": {k: g.get_state() for k, g in gens.items()},
            "hidden_policy": HIDDEN_POLICY})
        saved["epoch"] = epoch
        line = (f"epoch {epoch:4d} | {kind} lr {args.lr:g} | train ppl {record['train_ppl']:8.2f}"
                f" | val ppl {record['val_ppl']:8.2f} | {record['tokens_per_s']:.0f} tok/s | "
                f"{seconds:.1f}s" + (" | switched to ASGD" if switch else ""))
        if args.quiet:
            print(line, flush=True)
        else:
            say(line)
            epochs.set_postfix(val_ppl=f"{record['val_ppl']:.2f}", opt=kind)
        projection.after(seconds, 1, args.epochs - epoch)
    records = log.records()
    final = {"best_val_loss": state["best_val_loss"],
             "best_val_ppl": perplexity(state["best_val_loss"]),
             "best_epoch": state["best_epoch"], "epochs": state["epoch"],
             "asgd_epoch": state["asgd_epoch"], "params": params, "ntokens": corpus.ntokens,
             **arch_record(arch),
             "train_seconds": sum(r["seconds"] for r in records),
             "tokens_per_s": (sum(r["tokens_per_s"] for r in records) / len(records)
                              if records else None),
             "last": records[-1] if records else {}}
    log.write_final(final)
    print(f"done: best val ppl {final['best_val_ppl']:.2f} (epoch {final['best_epoch']}); "
          f"test it with python evaluation/rnn/test.py --checkpoint {output}", flush=True)
    return final


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    train_rnn(parser.parse_args(argv), given_flags(parser, argv))


if __name__ == "__main__":
    run_cli(main)
