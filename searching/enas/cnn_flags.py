"""The ENAS CNN flags (``--cnn_space`` and the official ``child_*`` / ``controller_*`` names
of melodyguan/enas ``src/cifar10/main.py``) that ``searching/enas/main.py`` adds for
``--network_type cnn``.

Flags whose official default differs between the macro and the micro search default to None
here; :func:`searching.enas.cnn_search.resolve_cnn_args` fills them from
``cifar10_macro_search.sh`` / ``cifar10_micro_search.sh``. The flags main.py owns
(``--controller_optim``, ``--controller_lr``, ``--entropy_coeff``, ``--tanh_c``,
``--max_epoch``, ``--batch_size``, ...) are not defined again here.
"""
from __future__ import annotations

import argparse

from api.spaces.enas_macro.arch import MACRO_BRANCHES

CNN_SPACES = ("macro", "micro")
#: --child_clip_mode: TF's "norm" mode as it runs (no clipping), per-tensor, global norm
CLIP_MODES = ("tf", "norm", "global")
#: --macro_reward_bn: BN statistics of the macro reward forward
REWARD_BN = ("running", "batch")


def add_cnn_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the CNN search flags to ``p`` (main.py's parser) and return it."""
    g = p.add_argument_group("ENAS CNN (--network_type cnn)")
    g.add_argument("--cnn_space", default="macro",
                   help="macro (TF's 12-layer network; default, this project's reading of the "
                        "seed's CNN command, whose own CNN code never ran) or micro (the ENAS "
                        "cell, 5 ops, B=5: the paper's search-cost setting)")
    g.add_argument("--child_num_layers", type=int, default=None,
                   help="macro: layers (default 12); micro: normal cells per stage "
                        "(default 6: 6 normal + 2 reduction cells)")
    g.add_argument("--child_out_filters", type=int, default=None,
                   help="filters of the first stage (default 36 macro, 20 micro)")
    g.add_argument("--child_num_cells", type=int, default=5,
                   help="micro: B, the nodes per cell (the arch text form has 4*B integers)")
    g.add_argument("--child_num_branches", type=int, default=None,
                   help="ops per choice (6 macro, 5 micro; fixed by the space)")
    g.add_argument("--child_lr_max", type=float, default=0.05,
                   help="child SGD (Nesterov) cosine-with-restarts top lr")
    g.add_argument("--child_lr_min", type=float, default=0.0005, help="cosine floor")
    g.add_argument("--child_lr_T_0", type=int, default=10,
                   help="first cosine period in epochs (SGDR T0)")
    g.add_argument("--child_lr_T_mul", type=int, default=2, help="period multiplier (Tmul)")
    g.add_argument("--child_l2_reg", type=float, default=None,
                   help="child l2 (default 2.5e-4 macro, 1e-4 micro); ENAS adds l2 * sum(w^2) to "
                        "the loss, i.e. SGD weight decay 2 * l2")
    g.add_argument("--child_grad_bound", type=float, default=5.0,
                   help="the child's gradient bound (see --child_clip_mode)")
    g.add_argument("--child_clip_mode", choices=CLIP_MODES, default="tf",
                   help="tf: as TF's code runs its 'norm' mode, which computes each clipped "
                        "gradient and applies the unclipped one (no clipping); norm: each "
                        "gradient tensor clipped to norm --child_grad_bound (what 'norm' "
                        "means); global: the global norm clipped to --child_grad_bound")
    g.add_argument("--child_keep_prob", type=float, default=0.9,
                   help="dropout keep probability before the classifier")
    g.add_argument("--child_drop_path_keep_prob", type=float, default=0.6,
                   help="accepted for the official scripts' sake: ENAS's micro *search* network "
                        "applies no drop-path (only its fixed network does), nor do we")
    g.add_argument("--child_use_aux_heads", type=int, choices=(0, 1), default=1,
                   help="micro: auxiliary head (weight 0.4) during the search")
    g.add_argument("--child_train_aux_head", type=int, choices=(0, 1), default=0,
                   help="micro: 1 trains the auxiliary head's own weights; 0 keeps them at "
                        "their initial values as TF does (its loss still trains the network "
                        "below it)")
    g.add_argument("--macro_branches", choices=MACRO_BRANCHES, default="all",
                   help="macro: branches each layer computes in a child step: all (the other "
                        "five too, for their BN running statistics, as TF's graph builds "
                        "every branch outside its tf.case), sampled (only the sampled one; "
                        "faster, stale statistics for rarely sampled ops), last (the max-pool "
                        "branch whatever was sampled: TF's code as it runs, its closures "
                        "binding late)")
    g.add_argument("--macro_reward_bn", choices=REWARD_BN, default="running",
                   help="macro: BN statistics of the reward and derive forwards: running "
                        "(TF's inference mode) or batch (the validation minibatch's own)")
    g.add_argument("--controller_num_aggregate", type=int, default=None,
                   help="architectures sampled per controller step (default 20 macro, "
                        "10 micro)")
    g.add_argument("--controller_skip_target", type=float, default=0.4,
                   help="macro: target skip-connection density (KL penalty)")
    g.add_argument("--controller_skip_weight", type=float, default=0.8,
                   help="macro: weight of the skip penalty in the controller's loss")
    g.add_argument("--controller_op_tanh_reduce", type=float, default=2.5,
                   help="micro: op logits use tanh constant tanh_c / this (ENAS's macro "
                        "controller has no such reduction)")
    g.add_argument("--controller_valid_batches", type=int, default=1,
                   help="validation minibatches per reward (ENAS: 1)")
    g.add_argument("--valid_fraction", type=float, default=0.1,
                   help="share of the training images held out for the controller's reward "
                        "(official: 5k of 50k)")
    return p
