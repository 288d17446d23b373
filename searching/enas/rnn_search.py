"""ENAS RNN cell search on a PTB-format text corpus (``main.py --network_type rnn``).

It runs on the weight-sharing trainer's text variant
(:class:`searching.oneshot.text.TextOneShotSearch`) and adds what ENAS does differently:
:class:`EnasTextFeed` (carpedm20's fixed ``bptt`` windows from the split's start each epoch, at
most ``--shared_max_step`` per epoch), :class:`EnasTextSearch` (``--train_size N`` words, the
controller's curves and figures) and :func:`run` (main.py's namespace -> settings -> search).

See docs/enas.md.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Dict, List

from api.errors import UserError
from searching.oneshot.text import TextData, TextFeed, TextOneShotSearch

#: carpedm20 config.py (ema_baseline_decay: 0.95 as the paper; see
#: searching/enas/rnn_method.py for every choice).
RNN_DEFAULTS: Dict[str, Any] = dict(
    max_epoch=150, batch_size=64, num_blocks=12, controller_hid=100, controller_optim="adam",
    controller_lr=3.5e-4, controller_max_step=2000, shared_max_step=400, shared_lr=20.0,
    shared_grad_clip=0.25, shared_l2_reg=1e-7, shared_decay=0.96, shared_decay_after=15.0,
    tanh_c=2.5, softmax_temperature=5.0, entropy_coeff=1e-4, ema_baseline_decay=0.95,
    reward_c=80.0, shared_embed=1000, shared_hid=1000, shared_dropout=0.4,
    shared_dropoute=0.1, shared_dropouti=0.65, shared_wdrop=0.5, shared_rnn_max_length=35,
    derive_num_sample=100, controller_lr_max=0.05, controller_lr_min=1e-3,
    controller_grad_clip=0.0)


class EnasTextFeed(TextFeed):
    """Fixed ``bptt`` windows from the split's start, at most ``max_steps`` per epoch."""

    def __init__(self, search: "EnasTextSearch", data: TextData, max_steps: int) -> None:
        super().__init__(search, data)
        self.max_steps = int(max_steps)

    def steps(self, state) -> int:
        return min(self.max_steps, math.ceil((self.data.train.size(0) - 2) / self.bptt))

    def done(self, state, step: int) -> bool:
        return step >= self.max_steps or state["pos"] >= self.data.train.size(0) - 2

    def batch(self, state, step: int):
        from api.lm.data import get_batch

        i = int(state["pos"])
        x, y = get_batch(self.data.train, i, self.bptt)
        state["pos"] = i + self.bptt
        return (x, y), None, y.numel(), 0

    def epoch_end(self, net, means: Dict[str, float]) -> Dict[str, Any]:
        out = super().epoch_end(net, means)
        method = self.search.method
        return {**out, "derived_valid_batch_ppl": getattr(method, "derive_ppl", None),
                "derive_seconds": getattr(method, "derive_seconds", None)}


class EnasTextSearch(TextOneShotSearch):
    def __init__(self, *args: Any, shared_max_step: int = 400, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_max_step = int(shared_max_step)

    def load_data(self) -> TextData:
        data = super().load_data()
        n = int(self.config.train_size)
        if n > 0:
            from api.lm.data import batchify

            words = data.fingerprint["train_tokens"]
            if n > words:
                raise UserError(f"--train_size {n} is more than the {words} "
                                f"training words of {self.config.data}")
            # the batchified split's columns, in order, are the corpus's first words (all but
            # a tail shorter than a column, which batchify drops from any prefix too)
            data.train = batchify(data.train.t().reshape(-1)[:n], self.config.batch_size,
                                  self.device)
            data.fingerprint = {**data.fingerprint, "train_size": n}
        return data

    def make_feed(self, data: TextData) -> EnasTextFeed:
        return EnasTextFeed(self, data, self.shared_max_step)

    def summary_extra(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        last = history[-1]
        return {**super().summary_extra(history),
                **{f"final_{k}": last.get(k) for k in ("reward", "entropy", "baseline",
                                                       "reward_ppl",
                                                       "derived_valid_batch_ppl")},
                "controller_steps": last.get("controller_steps")}

    def write_outputs(self, net, history, seconds, benchmark, final) -> None:
        super().write_outputs(net, history, seconds, benchmark, final)
        if self.plots and history:
            write_controller_plot(self.root, history)


def write_controller_plot(root, history: List[Dict[str, Any]]) -> None:
    """controller.png: the controller's mean reward, entropy and baseline, and the reward
    windows' perplexity, per epoch."""
    from searching.oneshot.trainer import write_panels

    panels = (("reward", ("reward", "baseline")), ("entropy", ("entropy",)),
              ("validation-window perplexity", ("reward_ppl", "derived_valid_batch_ppl")))
    write_panels(Path(root) / "controller.png", history, panels)


def resolve_rnn_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the flags left at None with the RNN defaults and check them."""
    for key, value in RNN_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for name in ("max_epoch", "batch_size", "shared_max_step", "shared_embed", "num_blocks",
                 "controller_hid", "derive_num_sample", "shared_rnn_max_length"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.controller_max_step < 0:
        raise UserError("--controller_max_step must be at least 0")
    if str(args.shared_optim).lower() != "sgd":
        raise UserError(f"--shared_optim {args.shared_optim!r}: the ENAS RNN search trains "
                        "the shared weights with sgd (carpedm20's and the paper's)")
    if args.shared_hid != args.shared_embed:
        raise UserError(f"the decoder is tied to the embedding: --shared_hid "
                        f"({args.shared_hid}) must equal --shared_embed ({args.shared_embed})")
    if args.softmax_temperature <= 0:
        raise UserError("--softmax_temperature must be positive")
    return args


def run(args: argparse.Namespace):
    """The search ``args`` (main.py's namespace, ``args.data`` = the corpus folder) asks for;
    returns the found :class:`~api.spaces.arch_io.Arch`."""
    from api.train.distributed import resolve_device
    from searching.enas.rnn_method import EnasRNN, EnasRNNSettings
    from api.runs.run_folder import resolve_seed
    from searching.oneshot.trainer import OneShotConfig

    args = resolve_rnn_args(args)
    resolve_seed(args, args.save)
    settings = EnasRNNSettings(
        num_blocks=args.num_blocks, controller_hid=args.controller_hid,
        softmax_temperature=args.softmax_temperature, tanh_c=args.tanh_c,
        controller_optim=str(args.controller_optim).lower(), controller_lr=args.controller_lr,
        controller_lr_cosine=bool(args.controller_lr_cosine),
        controller_lr_max=args.controller_lr_max, controller_lr_min=args.controller_lr_min,
        controller_grad_clip=args.controller_grad_clip,
        controller_max_step=args.controller_max_step, entropy_coeff=args.entropy_coeff,
        ema_baseline_decay=args.ema_baseline_decay, reward_c=float(args.reward_c),
        derive_num_sample=args.derive_num_sample, max_epoch=args.max_epoch,
        shared_decay=args.shared_decay, shared_decay_after=args.shared_decay_after,
        bptt=args.shared_rnn_max_length)
    supernet = dict(emsize=args.shared_embed, nhid=args.shared_hid,
                    dropout=args.shared_dropout, dropoute=args.shared_dropoute,
                    dropouti=args.shared_dropouti, wdrop=args.shared_wdrop,
                    num_nodes=args.num_blocks, bn_init=args.shared_bn_init)
    config = OneShotConfig(space="enas-rnn", dataset=args.dataset, data=args.data,
                           epochs=args.max_epoch, batch_size=args.batch_size, seed=args.seed,
                           train_size=args.train_size, lr=args.shared_lr,
                           lr_min=args.shared_lr, momentum=0.0, nesterov=False,
                           weight_decay=args.shared_l2_reg, grad_clip=args.shared_grad_clip,
                           crop_padding=0, flip=False, supernet=supernet)
    method = EnasRNN(settings, args.seed, progress=not args.quiet)
    search = EnasTextSearch(args.save, config, method, resolve_device(args.device),
                            progress=not args.quiet, plots=not args.no_plots, args=vars(args),
                            checkpoint_seconds=60.0 * args.checkpoint_minutes,
                            bptt=args.shared_rnn_max_length,
                            shared_max_step=args.shared_max_step)
    arch = search.run(resume=args.resume, force=args.force)
    print(f"searched architecture: {arch.text}")
    return arch


__all__ = ["EnasTextFeed", "EnasTextSearch", "RNN_DEFAULTS", "resolve_rnn_args", "run"]
