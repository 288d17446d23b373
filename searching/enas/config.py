"""The flags of ``searching/enas/main.py``: carpedm20/ENAS-pytorch ``config.py``'s names (the
seed's command lines), the repository's common flags, and the CNN flags of
:mod:`searching.enas.cnn_flags`.

Flags whose default differs between the RNN and the CNN searches default to None here; each
search fills them (:data:`searching.enas.rnn_search.RNN_DEFAULTS`; the CNN search's own).
A bad flag value is one ``error:`` line and exit 2 (the parser raises
:class:`api.errors.UserError` instead of printing its usage).
"""
from __future__ import annotations

import argparse

from api.datasets import add_download_flag
from api.runs.run_folder import add_run_flags
from api.errors import UserError

NETWORK_TYPES = ("rnn", "cnn")


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (UserError; main's run_cli prints it, exit 2)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise UserError(f"{message} (see python searching/enas/main.py -h)")


def str2bool(value: str) -> bool:
    """``--controller_lr_cosine=True`` as the seed writes it (carpedm20's str2bool)."""
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="main.py", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
               description="ENAS (Pham et al. 2018): RNN cell search on a text corpus or CNN "
                           "search (macro or micro) on images, with a REINFORCE controller "
                           "and shared weights. Flags named as carpedm20/ENAS-pytorch's "
                           "config.py; None = the network type's default (in brackets).")
    n = p.add_argument_group("network")
    n.add_argument("--network_type", default="rnn",
                   help=f"one of {', '.join(NETWORK_TYPES)}")
    n.add_argument("--num_blocks", type=int, default=None, help="rnn: nodes per cell [12]")
    n.add_argument("--controller_hid", type=int, default=None,
                   help="controller LSTM units [rnn 100]")
    n.add_argument("--shared_embed", type=int, default=None,
                   help="rnn: shared LM embedding size [1000]")
    n.add_argument("--shared_hid", type=int, default=None,
                   help="rnn: shared LM hidden size, = --shared_embed (tied) [1000]")
    n.add_argument("--shared_dropout", type=float, default=None,
                   help="rnn: locked dropout on the cell outputs [0.4]")
    n.add_argument("--shared_dropoute", type=float, default=None,
                   help="rnn: word (embedding row) dropout [0.1]")
    n.add_argument("--shared_dropouti", type=float, default=None,
                   help="rnn: locked dropout on the embeddings [0.65]")
    n.add_argument("--shared_wdrop", type=float, default=None,
                   help="rnn: DropConnect on the hidden-to-hidden weights of node 0 [0.5]")
    n.add_argument("--shared_bn_init", choices=("uniform", "ones"), default="uniform",
                   help="rnn: the cell-output BN's scale and shift start U(-0.025, 0.025) as "
                        "every other weight (uniform, carpedm20's) or at 1 and 0 (ones)")
    n.add_argument("--shared_rnn_max_length", "--bptt", dest="shared_rnn_max_length",
                   type=int, default=None, help="rnn: window length (bptt) [35]")

    d = p.add_argument_group("data and run")
    d.add_argument("--dataset", default="ptb",
                   help="a folder name under ./data: a text folder (train.txt, valid.txt, "
                        "test.txt) for rnn, cifar/cifar10 (CIFAR-10 python batches) or an "
                        "image folder (train/<class>/, valid/<class>/) for cnn")
    d.add_argument("--data", default=None,
                   help="the dataset folder itself (overrides ./data/<dataset>)")
    add_download_flag(d)
    d.add_argument("--save", default=None, help="output folder [./logs/enas-<type>-<dataset>]")
    add_run_flags(d, "save", seed_aliases=("--random_seed",))
    d.add_argument("--no_plots", action="store_true", help="skip the PNG plots")
    d.add_argument("--train_size", type=int, default=0,
                   help="rnn: use the first N training words; cnn: N training images "
                        "(class-balanced, seeded); 0: all")
    d.add_argument("--batch_size", type=int, default=None, help="[rnn 64]")
    d.add_argument("--checkpoint_minutes", type=float, default=10.0,
                   help="also checkpoint mid-epoch after a step when this many minutes have "
                        "passed since the last save (0: every step; -1: epochs only)")

    t = p.add_argument_group("learning")
    t.add_argument("--max_epoch", type=int, default=None, help="search epochs [rnn 150]")
    t.add_argument("--shared_max_step", type=int, default=None,
                   help="shared-weight steps per epoch [rnn 400]")
    t.add_argument("--shared_optim", default="sgd", help="shared weights' optimizer (sgd)")
    t.add_argument("--shared_lr", type=float, default=None, help="[rnn 20.0]")
    t.add_argument("--shared_decay", type=float, default=None,
                   help="rnn: shared lr x this per epoch after --shared_decay_after [0.96]")
    t.add_argument("--shared_decay_after", type=float, default=None, help="rnn: [15]")
    t.add_argument("--shared_l2_reg", type=float, default=None, help="[rnn 1e-7]")
    t.add_argument("--shared_grad_clip", type=float, default=None, help="[rnn 0.25]")
    t.add_argument("--controller_max_step", type=int, default=None,
                   help="controller steps per epoch [rnn 2000]")
    t.add_argument("--controller_optim", default=None, help="adam, sgd or momentum [adam]")
    t.add_argument("--controller_lr", type=float, default=None, help="[rnn 3.5e-4]")
    t.add_argument("--controller_lr_cosine", type=str2bool, nargs="?", const=True,
                   default=False, help="cosine controller lr from --controller_lr_max to "
                   "--controller_lr_min over the search (ignores --controller_lr)")
    t.add_argument("--controller_lr_max", type=float, default=None, help="[0.05]")
    t.add_argument("--controller_lr_min", type=float, default=None,
                   help="[rnn 0.001, cnn 0.0001]")
    t.add_argument("--controller_grad_clip", type=float, default=None,
                   help="clip the controller's gradient norm (0: no) [rnn 0]")
    t.add_argument("--tanh_c", type=float, default=None,
                   help="controller logits -> tanh_c * tanh(logits) [rnn 2.5]")
    t.add_argument("--softmax_temperature", type=float, default=None, help="[rnn 5.0]")
    t.add_argument("--entropy_coeff", type=float, default=None,
                   help="entropy bonus in the reward [rnn 1e-4]")
    t.add_argument("--ema_baseline_decay", type=float, default=None, help="[rnn 0.95]")
    t.add_argument("--reward_c", type=float, default=None, help="rnn: reward = c / ppl [80]")
    t.add_argument("--derive_num_sample", type=int, default=None,
                   help="cells sampled to derive the result [rnn 100]")
    from searching.enas.cnn_flags import add_cnn_flags  # --cnn_space, child_* (ENAS CNN)

    return add_cnn_flags(p)


__all__ = ["NETWORK_TYPES", "Parser", "build_parser", "str2bool"]
