"""The parts of ShrinkRNN training and testing that both CLIs share.

The language model itself is the search's :class:`searching.rnn.model.RNNModel`; this module
only adds what final training needs on top of it: the raw (pre-dropout) cell outputs for TAR,
DARTS' random sequence length, the non-monotone ASGD rule, evaluation with ASGD's averaged
weights, and rebuilding a model from a checkpoint's spec.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from api.errors import UserError
from api.graph import CellGraph
from api.graph_io import load_graph
from searching.rnn.data import get_batch
from searching.rnn.model import RNNModel, linear_cross_entropy
from searching.rnn.utils import RNN_OPS

DROPOUTS = ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")


# ----------------------------------------------------------------------------- the model
def load_rnn_graph(spec: str) -> CellGraph:
    """A graph for the RNN trainer; a CNN graph file or preset is refused with one line."""
    graph = load_graph(spec)
    if graph.space != "rnn":
        if spec.startswith("ops=") and all(op in RNN_OPS for op in graph.ops_def[1:]):
            return CellGraph(graph.mask, graph.ops_def, space="rnn")  # text form: no space
        raise UserError(f"--graph_path {spec} is a {graph.space.upper()} cell (space "
                        f"{graph.space!r}); the RNN trainer needs an RNN cell from "
                        "searching/rnn/train.py or the preset shrinkrnn")
    return graph


def model_spec(graph: CellGraph, ntokens: int, emsize: int, nhid: int,
               dropouts: Dict[str, float]) -> Dict[str, Any]:
    """Everything needed to rebuild the model, in plain types (checkpoints load weights_only)."""
    return {"kind": "rnn_lm", "graph": graph.to_dict(), "ntokens": ntokens, "emsize": emsize,
            "nhid": nhid, "dropouts": dict(dropouts)}


def build_model(spec: Dict[str, Any], embedding: Optional[torch.Tensor] = None) -> RNNModel:
    if spec.get("kind") != "rnn_lm":
        raise UserError("the checkpoint holds no RNN language model (was it written by "
                        "evaluation/rnn/train.py?)")
    graph = CellGraph.from_dict(spec["graph"], source="checkpoint")
    return RNNModel(graph, spec["ntokens"], spec["emsize"], spec["nhid"], embedding=embedding,
                    **spec["dropouts"])


def forward_raw(model: RNNModel, inputs: torch.Tensor, hidden: torch.Tensor,
                generator: Optional[torch.Generator] = None):
    """(outputs after output dropout, raw cell outputs for TAR, new hidden)."""
    return model.forward_raw(inputs, hidden, generator)


def regularized_loss(model: RNNModel, inputs: torch.Tensor, targets: torch.Tensor,
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
def evaluate(model: RNNModel, data: torch.Tensor, bptt: int, progress=None) -> float:
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
