"""Training any CNN architecture: the network a trainer builds for ``--arch``, and its recipes.

The architecture's space picks a *family*: ``autoshrink`` (the cell in the trainer's own macro
network, :mod:`api.spaces.autoshrink_cnn.model_spec`), ``darts`` (``darts``, ``enas-micro`` and
``nao`` cells in DARTS's ``NetworkCIFAR`` / ``NetworkImageNet`` with its auxiliary head and
drop-path) or ``nb201`` (the benchmark's ``TinyNetwork``). Each family has a named recipe
(:data:`CIFAR_RECIPES`, :data:`IMAGENET_RECIPES`); the recipe flags default to ``None`` and are
filled from ``--recipe``, so a flag given on the command line wins. Checkpoints record
``darts``/``nb201`` networks as :func:`network_record` dicts, from which
:func:`build_from_record` rebuilds them for ``--resume`` and ``evaluation/cnn/validate.py``.

See docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import copy
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from api.errors import UserError

# --------------------------------------------------------------------------- recipes
#: CIFAR recipes (train_cifar.py). ``weight_decay_all``: decay every parameter, BN and biases
#: included, as DARTS's and NAS-Bench-201's ``SGD(model.parameters(), ...)`` do (AutoShrink's
#: recipe decays conv/linear weights only). The learning rate follows a per-step cosine.
CIFAR_RECIPES: Dict[str, Dict[str, Any]] = {
    # today's AutoShrink recipe: DARTS's optimisation without drop-path / auxiliary head
    "autoshrink": dict(epochs=600, batch_size=96, lr=0.025, min_lr=0.0, warmup_epochs=0.0,
                       momentum=0.9, nesterov=False, weight_decay=3e-4, weight_decay_all=False,
                       grad_clip=5.0, drop_path=0.0, auxiliary_weight=0.0,
                       label_smoothing=0.0, ema_decay=0.0, padding=4, cutout=16),
    # DARTS (quark0/darts cnn/train.py): SGD 0.025 momentum 0.9, cosine to 0 over 600 epochs,
    # batch 96, weight decay 3e-4, cutout 16, drop-path 0.2, auxiliary weight 0.4, clip 5
    "darts": dict(epochs=600, batch_size=96, lr=0.025, min_lr=0.0, warmup_epochs=0.0,
                  momentum=0.9, nesterov=False, weight_decay=3e-4, weight_decay_all=True,
                  grad_clip=5.0, drop_path=0.2, auxiliary_weight=0.4, label_smoothing=0.0,
                  ema_decay=0.0, padding=4, cutout=16),
    # NAS-Bench-201's 200-epoch recipe (AutoDL-Projects configs/nas-benchmark/hyper-opts/
    # 200E.config, = CIFAR.config): SGD 0.1 Nesterov momentum 0.9, cosine to 0 with no warm-up,
    # weight decay 5e-4, batch 256, plain cross-entropy; crop (pad 4) + flip, no cutout, no
    # gradient clipping
    "nas-bench-201": dict(epochs=200, batch_size=256, lr=0.1, min_lr=0.0, warmup_epochs=0.0,
                          momentum=0.9, nesterov=True, weight_decay=5e-4, weight_decay_all=True,
                          grad_clip=0.0, drop_path=0.0, auxiliary_weight=0.0,
                          label_smoothing=0.0, ema_decay=0.0, padding=4, cutout=0),
}

#: ImageNet recipes (train_imagenet.py); ``lr`` is per 128 images (scaled by the global batch).
IMAGENET_RECIPES: Dict[str, Dict[str, Any]] = {
    # the AutoShrink paper's: TF RMSProp, 10 warm-up + cosine over 300 epochs, EMA
    "autoshrink": dict(optimizer="rmsprop_tf", schedule="cosine", lr_decay=0.97, epochs=300,
                       warmup_epochs=10.0, batch_size=128, lr=0.05, momentum=0.9,
                       nesterov=False, weight_decay=None, weight_decay_all=False,
                       ema_decay=0.999, label_smoothing=0.1, grad_clip=0.0, drop_path=0.0,
                       auxiliary_weight=0.0, crop_scale=[0.75, 1.0], color_jitter=0.4,
                       reprob=0.5, crop_pct=0.875),
    # DARTS's mobile setting (quark0/darts cnn/train_imagenet.py): SGD 0.1 momentum 0.9, lr
    # x0.97 every epoch, 250 epochs, batch 128, label smoothing 0.1, auxiliary weight 0.4,
    # weight decay 3e-5, clip 5, no drop-path; random-resized crop (0.08-1) + flip + colour
    # jitter 0.4, val resize 256 / centre crop 224
    "darts": dict(optimizer="sgd", schedule="exponential", lr_decay=0.97, epochs=250,
                  warmup_epochs=0.0, batch_size=128, lr=0.1, momentum=0.9, nesterov=False,
                  weight_decay=3e-5, weight_decay_all=True, ema_decay=0.0, label_smoothing=0.1,
                  grad_clip=5.0, drop_path=0.0, auxiliary_weight=0.4, crop_scale=[0.08, 1.0],
                  color_jitter=0.4, reprob=0.0, crop_pct=0.875),
}

#: family -> default recipe, per trainer.
DEFAULT_RECIPE = {"cifar": {"autoshrink": "autoshrink", "darts": "darts",
                            "nb201": "nas-bench-201"},
                  "imagenet": {"autoshrink": "autoshrink", "darts": "darts", "nb201": "darts"}}

#: spaces whose fixed network is not DARTS's.
_FAMILY = {"autoshrink-cnn": "autoshrink", "nas-bench-201": "nb201"}
#: families whose networks have an auxiliary head and DARTS's drop-path.
AUXILIARY_FAMILIES = ("darts",)


def family_of(space_name: str) -> str:
    """``autoshrink``, ``darts`` or ``nb201``; RNN spaces raise one clear error."""
    from api.spaces import get_space

    space = get_space(space_name)
    if space.kind != "cnn":
        raise UserError(f"--arch is a {space_name} architecture ({space.kind.upper()} cell): "
                        "CNN trainers need a CNN cell (train RNN cells with "
                        "evaluation/rnn/train.py)")
    return _FAMILY.get(space_name, "darts")


def apply_recipe(args: argparse.Namespace, table: Dict[str, Dict[str, Any]],
                 default: str) -> str:
    """Fill every recipe flag still ``None`` from ``--recipe`` (or ``default``); returns the
    recipe's name (also stored as ``args.recipe``)."""
    name = getattr(args, "recipe", None) or default
    if name not in table:
        raise UserError(f"unknown --recipe {name!r}; known: {', '.join(table)}")
    args.recipe = name
    for key, value in table[name].items():
        if getattr(args, key, None) is None:
            setattr(args, key, copy.deepcopy(value))
    return name


def add_recipe_flag(parser: argparse.ArgumentParser, table: Dict[str, Dict[str, Any]],
                    defaults: Dict[str, str]) -> None:
    by_family = ", ".join(f"{fam}: {rec}" for fam, rec in defaults.items())
    parser.add_argument("--recipe", choices=list(table),
                        help=f"named recipe that fills every recipe flag not given (default: by "
                             f"the architecture's space family, {by_family})")


def add_arch_args(parser: argparse.ArgumentParser, graph_alias: bool = True,
                  required: bool = False) -> argparse._ArgumentGroup:
    """``--arch`` (alias ``--graph_path``) and the width/depth flags of the cell networks."""
    g = parser.add_argument_group(
        "architecture", "the cell to train and the size of its network (unset: the space's "
                        "reference network)")
    names = ["--arch", "--graph_path"] if graph_alias else ["--arch"]
    g.add_argument(*names, dest="arch", required=required,
                   help="a file any search wrote (arch-best, graph-best, their .json/.txt), a "
                        "zoo preset (darts-v2, gdas-v1, shrinkcnn-a, ...) or a space string "
                        "(a DARTS Genotype(...), a NAS-Bench-201 |op~0|+..., an AutoShrink "
                        "ops=...)")
    g.add_argument("--fixed_arc",
                   help="an ENAS/NAO micro architecture as its 40 integers (NAO's fixed_arc: "
                        "normal then reduction cell, 5 nodes x idx1 op1 idx2 op2); ops 0..4 "
                        "build the enas-micro space's network, any op 5..15 NAO's own (the nao "
                        "space); instead of --arch")
    g.add_argument("--keep_prob", type=float,
                   help="nao-space networks: keep probability of the dropout before the "
                        "classifier (NAO's keep_prob; default 1 = none)")
    g.add_argument("--C", "--init_channels", dest="C", type=int,
                   help="initial channels (DARTS family: 36 CIFAR / 48 ImageNet; "
                        "NAS-Bench-201: 16)")
    g.add_argument("--layers", type=int,
                   help="cells in the network (DARTS family: 20 CIFAR / 14 ImageNet)")
    g.add_argument("--N", dest="N", type=int,
                   help="cells per stage (NAS-Bench-201: 5; DARTS family: layers = 3N + 2, "
                        "GDAS's convention)")
    return g


# --------------------------------------------------------------------------- networks
def network_kwargs(space_name: str, args: argparse.Namespace, auxiliary: bool
                   ) -> Dict[str, Any]:
    """The build_network keyword arguments of ``space_name`` from --C/--layers/--N."""
    C, layers, N = (getattr(args, k, None) for k in ("C", "layers", "N"))
    fam = family_of(space_name)
    if fam == "nb201":
        if layers is not None:
            raise UserError("--layers is for DARTS-family networks; a NAS-Bench-201 "
                            "TinyNetwork takes --N (cells per stage) and --C")
        return {k: v for k, v in (("C", C), ("N", N)) if v is not None}
    if fam != "darts":
        raise UserError(f"no cell network for the {space_name} space")
    if N is not None:
        if layers is not None and layers != 3 * N + 2:
            raise UserError(f"--N {N} means {3 * N + 2} layers, not --layers {layers}")
        layers = 3 * N + 2
    kwargs: Dict[str, Any] = {"auxiliary": bool(auxiliary)}
    if C is not None:
        kwargs["C"] = C
    keep_prob = getattr(args, "keep_prob", None)
    if keep_prob is not None:
        if space_name != "nao":
            raise UserError("--keep_prob is the nao network's dropout; this architecture "
                            f"builds a {space_name} network (drop the flag)")
        if not 0.0 < keep_prob <= 1.0:
            raise UserError(f"--keep_prob must be in (0, 1], got {keep_prob}")
        kwargs["keep_prob"] = float(keep_prob)
    if layers is not None:
        if space_name == "nao":  # NAO's networks count cells per stage
            if (layers - 2) % 3:
                raise UserError(f"the nao network has 3N + 2 cells; --layers {layers} is not")
            kwargs["N"] = (layers - 2) // 3
        else:
            kwargs["layers"] = layers
    return kwargs


def network_record(arch, dataset: str, kwargs: Dict[str, Any],
                   num_classes: Optional[int] = None) -> Dict[str, Any]:
    """What checkpoints store to rebuild a cell network: the space, the architecture's JSON
    and text forms, the dataset it is built for, its build_network settings and classes."""
    from api.spaces.base import dataset_info

    return {"space": arch.space, "arch": arch.to_json()["arch"], "text": arch.text,
            "dataset": dataset, "kwargs": dict(kwargs),
            "num_classes": int(num_classes or dataset_info(dataset)[1])}


def build_from_record(record: Dict[str, Any], source: str = "checkpoint") -> nn.Module:
    """The network a :func:`network_record` describes (drop-path off, as built)."""
    from api.spaces import get_space

    try:
        space = get_space(record["space"])
        value = space.from_json(record["arch"])
        model = space.build_network(value, record["dataset"], **record.get("kwargs", {}))
        classes = int(record.get("num_classes") or 0)
    except (KeyError, TypeError) as exc:
        raise UserError(f"{source} has a damaged architecture record ({exc})") from exc
    if classes:
        set_num_classes(model, classes)
    return model


def set_num_classes(model: nn.Module, num_classes: int) -> nn.Module:
    """Give every linear ``classifier`` (the main and auxiliary heads) ``num_classes``
    outputs; a no-op where they already have them."""
    for module in list(model.modules()):
        head = getattr(module, "classifier", None)
        if isinstance(head, nn.Linear) and head.out_features != num_classes:
            module.classifier = nn.Linear(head.in_features, num_classes,
                                          bias=head.bias is not None)
    return model


def describe(model: nn.Module, record: Dict[str, Any]) -> str:
    """``NetworkCIFAR(C=36, layers=20, auxiliary=True, ...)``: the class and its settings."""
    extra = model.extra_repr() if type(model).extra_repr is not nn.Module.extra_repr else ""
    if not extra:
        extra = ", ".join(f"{k}={v}" for k, v in record.get("kwargs", {}).items())
    return f"{type(model).__name__}({extra}) for {record['dataset']}, " \
           f"{record['num_classes']} classes"


def cost(model: nn.Module, image_shape: Tuple[int, int, int]) -> Dict[str, Any]:
    """Params (all but the auxiliary head, DARTS's convention) and MACs of one image."""
    from api.spaces.complexity import count_macs
    from api.spaces.base import params_without_auxiliary

    return {"params": params_without_auxiliary(model), "macs": count_macs(model, image_shape),
            "image_size": int(image_shape[-1]),
            "params_convention": "every parameter except the auxiliary head"}


def build_arch_network(arch, args: argparse.Namespace, dataset: str, num_classes: int,
                       image_size: int) -> Tuple[nn.Module, Dict[str, Any], Dict[str, Any], str]:
    """A trainer's network for a cell-space ``arch`` (the ``darts`` and ``nb201`` families):
    records the architecture in ``args.arch_record``, builds the space's network from
    --C/--layers/--N (auxiliary head when ``args.auxiliary_weight > 0``) for ``dataset``
    with ``num_classes`` outputs; returns (model, its :func:`network_record`, its
    :func:`cost` at ``image_size``, the headline the trainer prints)."""
    args.arch_record = arch_record(arch)
    kwargs = network_kwargs(arch.space, args, auxiliary=args.auxiliary_weight > 0)
    record = network_record(arch, dataset, kwargs, num_classes)
    model = build_from_record(record)
    costs = cost(model, (3, image_size, image_size))
    headline = (f"{arch.space}: {arch.text}\n{describe(model, record)} | params "
                f"{costs['params'] / 1e6:.6f}M (auxiliary head not counted), MACs "
                f"{costs['macs'] / 1e6:.1f}M at {image_size}px")
    return model, record, costs, headline


# --------------------------------------------------------------------------- training parts
class AuxiliaryLoss(nn.Module):
    """``loss(logits) + weight * loss(logits_aux)`` for models that return
    ``(logits, logits_aux)`` while training (DARTS's networks); plain ``loss`` otherwise."""

    def __init__(self, base: nn.Module, weight: float) -> None:
        super().__init__()
        self.base = base
        self.weight = float(weight)

    def forward(self, output, target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, (tuple, list)):
            logits, aux = output
            loss = self.base(logits, target)
            if aux is not None and self.weight > 0:
                loss = loss + self.weight * self.base(aux, target)
            return loss
        return self.base(output, target)


class DropPathRamp:
    """Trainer epoch hook: ``model.drop_path_prob = prob * epoch / epochs`` (DARTS)."""

    def __init__(self, model: nn.Module, prob: float, epochs: int) -> None:
        if not hasattr(model, "drop_path_prob"):
            raise UserError(f"{type(model).__name__} has no drop-path; drop --drop_path_prob")
        self.model = model
        self.prob = float(prob)
        self.epochs = max(1, int(epochs))

    def __call__(self, epoch: int) -> None:
        self.model.drop_path_prob = self.prob * epoch / self.epochs


class EpochDecayLR:
    """Per-step scheduler: ``lr = base * gamma ** epoch`` (constant within an epoch), after an
    optional linear warm-up of ``warmup_steps``. With ``gamma=0.97`` this is DARTS's ImageNet
    ``StepLR(step_size=1, gamma=0.97)``. State: the step count only, like WarmupCosineLR."""

    def __init__(self, optimizer: torch.optim.Optimizer, steps_per_epoch: int, gamma: float,
                 warmup_steps: int = 0) -> None:
        self.optimizer = optimizer
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self.gamma = float(gamma)
        self.warmup_steps = max(0, int(warmup_steps))
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return self.gamma ** ((step - self.warmup_steps) // self.steps_per_epoch)

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> Dict[str, int]:
        return {"last_step": self.last_step}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.last_step = int(state["last_step"])
        self._apply()


def sgd(model: nn.Module, args: argparse.Namespace, lr: float, skip_depthwise: bool = False
        ) -> torch.optim.SGD:
    """SGD with the recipe's momentum / Nesterov / weight decay (on every parameter with
    ``--weight_decay_all``, else on conv and linear weights only)."""
    from api.train.optim import weight_decay_groups

    if args.weight_decay_all:
        params = [{"params": [p for p in model.parameters() if p.requires_grad],
                   "weight_decay": args.weight_decay}]
    else:
        params = weight_decay_groups(model, args.weight_decay, skip_depthwise=skip_depthwise)
    if args.nesterov and args.momentum <= 0:
        raise UserError("--nesterov needs --momentum > 0")
    return torch.optim.SGD(params, lr=lr, momentum=args.momentum, nesterov=bool(args.nesterov))


def check_family_flags(args: argparse.Namespace, fam: str, network_flags, given) -> None:
    """Refuse flags that do not apply to the architecture's network, naming them; networks
    without an auxiliary head or drop-path get ``auxiliary_weight = drop_path = 0``."""
    given = set(given or ())
    if fam == "autoshrink":
        wrong = [f"--{k}" for k in ("C", "layers", "N") if getattr(args, k, None) is not None]
        if getattr(args, "auxiliary_weight", None) and "auxiliary_weight" in given:
            wrong.append("--auxiliary_weight")
        if wrong:
            raise UserError(f"{', '.join(wrong)} apply to DARTS-family and NAS-Bench-201 "
                            "cells; an AutoShrink cell's network is set by the network flags "
                            "(--scale, --replicate, ...)")
        args.auxiliary_weight = 0.0  # no auxiliary head (drop-path: api.train.drop_path's hooks)
        return
    wrong = [f"--{flag}" for flag in network_flags
             if flag not in ("num_classes", "image_size") and getattr(args, flag, None)
             is not None]
    if wrong:
        raise UserError(f"{', '.join(wrong)} apply to AutoShrink cells; a {fam} cell's "
                        "network is set by --C, --layers/--N")
    if fam not in AUXILIARY_FAMILIES:
        for key, flag in (("auxiliary_weight", "--auxiliary_weight"),
                          ("drop_path", "--drop_path_prob")):
            if getattr(args, key, None) and key in given:
                raise UserError(f"{flag}: the {fam} network has no "
                                f"{'auxiliary head' if key == 'auxiliary_weight' else 'drop-path'}")
            setattr(args, key, 0.0)


# --------------------------------------------------------------------------- CLI helpers
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except ``None`` (a recipe flag: its value comes from ``--recipe``)."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def arch_from_args(args: argparse.Namespace):
    """The architecture of a run: the one it recorded (``args.arch_record``, on --resume),
    else ``--arch`` (or an old run's ``graph_path``); returns ``(arch, family)``."""
    from api.spaces import get_space
    from api.spaces.arch_io import Arch, load_arch

    record = getattr(args, "arch_record", None)
    if isinstance(record, dict) and "space" in record:
        arch = Arch(record["space"], get_space(record["space"]).from_json(record["arch"]))
    elif getattr(args, "fixed_arc", None):
        if getattr(args, "arch", None):
            raise UserError("give --arch or --fixed_arc, not both")
        arch = fixed_arc(args.fixed_arc)
    else:
        spec = getattr(args, "arch", None) or getattr(args, "graph_path", None)
        if not spec:
            raise UserError("give --arch: a file a search wrote, a zoo preset (darts-v2, "
                            "shrinkcnn-a, ...) or an architecture string")
        arch = load_arch(str(spec))
    return arch, family_of(arch.space)


def arch_record(arch) -> Dict[str, Any]:
    """The architecture as args.json and checkpoints record it: space, JSON and text."""
    return {"space": arch.space, "arch": arch.to_json()["arch"], "text": arch.text}


def fixed_arc(text: str):
    """NAO's ``fixed_arc`` (40 integers) -> an :class:`~api.spaces.arch_io.Arch` of the
    ``enas-micro`` space (ops 0..4) or, when any op is 5..15, of the ``nao`` space; a wrong
    length, an op or an input out of range is one :class:`UserError`."""
    from api.spaces import get_space
    from api.spaces.arch_io import Arch
    from api.spaces.enas_micro.arch import ENAS_OPS, NAO_OPS, parse_arch

    if not isinstance(text, str) or not text.split():
        raise UserError("--fixed_arc is empty: give the 40 integers of an ENAS/NAO micro "
                        "architecture, e.g. the first column of an arch_pool line")
    wide = parse_arch(text, len(NAO_OPS), "ENAS/NAO micro architecture (--fixed_arc)")
    space = "enas-micro" if max(wide.ops_used()) < len(ENAS_OPS) else "nao"
    return Arch(space, get_space(space).validate(wide))
