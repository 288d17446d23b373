"""The parts of RNN language-model training and testing that both CLIs share.

The language model is the one of the architecture's space: an AutoShrink cell graph
(``autoshrink-rnn``) in :class:`api.spaces.autoshrink_rnn.model.RNNModel`, a DARTS or ENAS cell (``darts-rnn``,
``enas-rnn``) in their space's network (:class:`api.spaces.darts_rnn.model.CellLM`); both have
the same interface. This module only adds what final training needs on top of them: the raw
(pre-dropout) cell outputs for TAR, DARTS' random sequence length, the non-monotone ASGD rule,
evaluation with ASGD's averaged weights, and rebuilding a model from a checkpoint's spec.
"""
from __future__ import annotations

import contextlib
import inspect
import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.lm.data import get_batch
from api.spaces.autoshrink_rnn.model import RNNModel, linear_cross_entropy
from api.spaces import get_space
from api.spaces.arch_io import Arch, load_arch
from api.spaces.autoshrink_rnn.space import RNN_OPS

DROPOUTS = ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")
#: The space of AutoShrink RNN cells, whose checkpoints keep their original layout.
AUTOSHRINK_RNN = "autoshrink-rnn"
RNN_PRESETS = "shrinkrnn, darts-ptb, enas-ptb"


# ----------------------------------------------------------------------------- the model
def _refuse(spec: str, space: str, kind: str) -> None:
    raise UserError(f"--arch {spec} is a {kind.upper()} cell (space {space}); the RNN trainer "
                    "needs an RNN cell: a file an RNN search wrote, an RNN cell string, or a "
                    f"preset ({RNN_PRESETS})")


def load_rnn_arch(spec: str) -> Arch:
    """``--arch``: a file any search wrote, a space string or a zoo preset, of an RNN space
    (AutoShrink's graphs as before: graph files and their .json twins, the ``ops=`` text form,
    the preset shrinkrnn). Anything else is refused with one line."""
    if spec.startswith("ops="):  # AutoShrink's text form names no space: an RNN cell here
        graph = CellGraph.from_string(spec)
        if not all(op in RNN_OPS for op in graph.ops_def[1:]):
            _refuse(spec, "autoshrink-cnn", "cnn")
        return Arch(AUTOSHRINK_RNN, CellGraph(graph.mask, graph.ops_def, space="rnn"))
    arch = load_arch(spec)
    kind = get_space(arch.space).kind
    if kind != "rnn":
        _refuse(spec, arch.space, kind)
    return arch


def _default_decoder_bias(space_name: str) -> Optional[bool]:
    """The space network's own ``decoder_bias`` default (None: the network has no such knob)."""
    param = inspect.signature(get_space(space_name).build_network).parameters.get("decoder_bias")
    return None if param is None or param.default is inspect.Parameter.empty else bool(
        param.default)


def model_spec(arch: Any, ntokens: int, emsize: int, nhid: int,
               dropouts: Dict[str, float]) -> Dict[str, Any]:
    """Everything needed to rebuild the model, in plain types (checkpoints load weights_only).

    ``arch`` is an :class:`Arch` or an AutoShrink ``CellGraph``. AutoShrink cells keep their
    original layout (``graph``); other spaces record ``space``, ``arch`` (the space's JSON form)
    and ``decoder_bias`` (the space network's default)."""
    if isinstance(arch, Arch) and arch.space == AUTOSHRINK_RNN:
        arch = arch.value
    if isinstance(arch, CellGraph):
        return {"kind": "rnn_lm", "graph": arch.to_dict(), "ntokens": ntokens,
                "emsize": emsize, "nhid": nhid, "dropouts": dict(dropouts)}
    return {"kind": "rnn_lm", "space": arch.space,
            "arch": get_space(arch.space).to_json(arch.value), "ntokens": ntokens,
            "emsize": emsize, "nhid": nhid, "dropouts": dict(dropouts),
            "decoder_bias": _default_decoder_bias(arch.space)}


def arch_of(spec: Dict[str, Any], source: str = "checkpoint") -> Arch:
    """The architecture a model spec records."""
    if "space" in spec:
        return Arch(spec["space"], get_space(spec["space"]).from_json(spec["arch"]))
    return Arch(AUTOSHRINK_RNN, CellGraph.from_dict(spec["graph"], source=source))


def build_model(spec: Dict[str, Any], embedding: Optional[torch.Tensor] = None):
    """The language model of a spec: :class:`RNNModel` for AutoShrink cells, the space's
    network otherwise (same interface)."""
    if spec.get("kind") != "rnn_lm":
        raise UserError("the checkpoint holds no RNN language model (was it written by "
                        "evaluation/rnn/train.py?)")
    if "space" in spec:
        arch = arch_of(spec)
        kwargs: Dict[str, Any] = dict(ntokens=spec["ntokens"], emsize=spec["emsize"],
                                      nhid=spec["nhid"], embedding=embedding, **spec["dropouts"])
        if spec.get("decoder_bias") is not None:
            kwargs["decoder_bias"] = bool(spec["decoder_bias"])
        return get_space(arch.space).build_network(arch.value, **kwargs)
    graph = CellGraph.from_dict(spec["graph"], source="checkpoint")
    return RNNModel(graph, spec["ntokens"], spec["emsize"], spec["nhid"], embedding=embedding,
                    **spec["dropouts"])


def count_lm_params(model: torch.nn.Module) -> int:
    """Trainable parameters (a tied embedding once; a fixed zero decoder bias not at all)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_raw(model, inputs: torch.Tensor, hidden: torch.Tensor,
                generator: Optional[torch.Generator] = None):
    """(outputs after output dropout, raw cell outputs for TAR, new hidden)."""
    return model.forward_raw(inputs, hidden, generator)


def regularized_loss(model, inputs: torch.Tensor, targets: torch.Tensor,
                     hidden: torch.Tensor, generator=None, alpha: float = 0.0,
                     beta: float = 0.0):
    """(cross-entropy, cross-entropy + AR + TAR, new hidden), as DARTS' final training:
    AR (alpha) on the dropped outputs, TAR (beta) on the raw ones."""
    out, raw, new_hidden = forward_raw(model, inputs, hidden, generator)
    ce = linear_cross_entropy(out.reshape(-1, model.nhid), model.decoder_weight,
                              model.decoder_bias, targets.reshape(-1))
    loss = ce
    if alpha:
        loss = loss + alpha * out.pow(2).mean()
    if beta and raw.size(0) > 1:
        loss = loss + beta * (raw[1:] - raw[:-1]).pow(2).mean()
    return ce, loss, new_hidden


@torch.no_grad()
def evaluate(model, data: torch.Tensor, bptt: int, progress=None) -> float:
    """Mean next-word loss over a batchified stream: bptt windows, hidden carried over."""
    model.eval()
    hidden = model.init_hidden(data.size(1))
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    count = 0
    for i in range(0, data.size(0) - 1, bptt):
        inputs, targets = get_batch(data, i, bptt)
        loss, hidden = model.loss(inputs, targets, hidden)
        total += loss.double() * targets.numel()
        count += targets.numel()
        if progress is not None:
            progress.update(1)
    return float(total) / max(count, 1)


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


# ------------------------------------------------------------------- the DARTS recipe parts
def sample_seq_len(gen: torch.Generator, bptt: int, short_prob: float = 0.05,
                   max_delta: int = 20) -> int:
    """DARTS' random BPTT length: bptt (bptt/2 with prob ``short_prob``), then ~N(that, 5),
    at least 5 and at most bptt + max_delta. Drawn from a CPU generator saved in checkpoints."""
    base = bptt if float(torch.rand((), generator=gen)) >= short_prob else bptt / 2.0
    draw = base + 5.0 * float(torch.randn((), generator=gen))
    return min(max(5, int(draw)), bptt + max_delta)


def should_switch_to_asgd(history: Sequence[float], val_loss: float, nonmono: int) -> bool:
    """The non-monotone trigger: val loss worse than the best of all but the last ``nonmono``
    evaluations (``history`` excludes the current one). nonmono 0 compares with all of them."""
    older = list(history)[:len(history) - nonmono] if nonmono > 0 else list(history)
    return len(history) > nonmono and bool(older) and val_loss > min(older)


def make_optimizer(kind: str, params, lr: float, wdecay: float) -> torch.optim.Optimizer:
    """SGD, or DARTS' ASGD (t0 = 0, lambd = 0: plain SGD steps that also keep an average)."""
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wdecay)
    if kind == "asgd":
        return torch.optim.ASGD(params, lr=lr, t0=0, lambd=0.0, weight_decay=wdecay)
    raise ValueError(kind)


@contextlib.contextmanager
def averaged_weights(model: torch.nn.Module, opt: torch.optim.Optimizer) -> Iterator[None]:
    """Inside the block the model holds ASGD's averaged weights ``ax`` (no-op for SGD)."""
    saved: List[Tuple[torch.Tensor, torch.Tensor]] = []
    if isinstance(opt, torch.optim.ASGD):
        for p in model.parameters():
            ax = opt.state.get(p, {}).get("ax")
            if ax is not None:
                saved.append((p, p.detach().clone()))
                p.data.copy_(ax)
    try:
        yield
    finally:
        for p, value in saved:
            p.data.copy_(value)


def averaged_state_dict(model: torch.nn.Module, opt_state: Dict[str, Any]) -> Dict[str, Any]:
    """The model's state dict with ASGD's ``ax`` in place of each parameter (from a saved
    optimizer state; parameters are indexed in ``model.parameters()`` order)."""
    index = {id(p): i for i, p in enumerate(model.parameters())}
    names = {id(p): n for n, p in model.named_parameters()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for pid, i in index.items():
        ax = opt_state.get("state", {}).get(i, {}).get("ax")
        if ax is not None:
            state[names[pid]] = ax
    return state


def check_vocabulary(saved: Sequence[str], words: Sequence[str], data: str) -> None:
    if list(saved) != list(words):
        raise UserError(f"--data {data} has another vocabulary ({len(words)} words) than the "
                        f"one the model was trained on ({len(saved)} words): point --data to "
                        "the corpus of the training run")
