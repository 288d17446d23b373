"""Milliseconds per training step of RNN proxy candidates: one at a time against k fused.

    python bench/rnn_step.py [--fused_members 10] [--steps 5] [--device auto]

"separate" is one candidate of the reference RNN search's first step trained as the proxy
trains it, on penn_proxy windows of 35 x 128; "fused kN" trains N candidates of that step as
one fused model with per-member clipping and SGD. One warm-up step, then the median of
``--steps`` timed steps; on CUDA also kernels per step and "graphed fused kN". The last column
divides by the members: a candidate's cost is about steps x ms per candidate-step.

Results: bench/README.md.
"""
from __future__ import annotations

import argparse

import torch

from api.train.distributed import resolve_device
from api.spaces.dag.graph import CellGraph
from api.lm.data import Corpus, batchify
from api.lm.embedding import embedding_matrix
from searching.fused.rnn_model import FusedRNNCandidates
from api.spaces.autoshrink_rnn.model import RNNModel
from cnn_step import count_kernels, time_step
from rnn_reference import REFERENCE_OPS
from searching.fused.rnn_trainer import member_sgd_step

BPTT, BATCH, LR, CLIP = 35, 128, 20.0, 0.25


def separate_step(graph, corpus, emb, train, device):
    torch.manual_seed(0)
    model = RNNModel(graph, corpus.ntokens, 100, embedding=emb).to(device)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    state = {"h": model.init_hidden(BATCH), "i": 0}

    def step():
        i = state["i"] = (state["i"] + BPTT) % (train.size(0) - BPTT - 1)
        loss, h = model.loss(train[i:i + BPTT], train[i + 1:i + 1 + BPTT], state["h"].detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP)
        opt.step()
        state["h"] = h
    return step


def fused_step(parent, graphs, corpus, emb, train, device):
    build = lambda g: RNNModel(g, corpus.ntokens, 100, embedding=emb)  # noqa: E731
    model, _ = FusedRNNCandidates.from_members(parent, graphs, build, range(len(graphs)))
    model.to(device)
    params = list(model.parameters())
    A = len(graphs)
    idx = torch.arange(A, device=device)
    lrs = torch.full((A,), LR, device=device)
    lengths = torch.full((A,), BPTT, device=device)
    state = {"h": params[0].new_zeros(A, BATCH, 100), "i": 0}
    span = train.size(0) - BPTT - 1 - A * 7

    def step():
        i = state["i"] = (state["i"] + BPTT) % span
        rows = torch.arange(BPTT, device=device).view(1, -1) + i + 7 * idx.view(-1, 1)
        loss, h = model.losses(train[rows], train[rows + 1], state["h"], lengths, idx)
        model.zero_grad(set_to_none=False)
        loss.sum().backward()
        member_sgd_step(params, idx, lrs, CLIP, 0.0)
        state["h"] = h.detach()
    return step


def graphed_fused_step(parent, graphs, corpus, emb, train, device):
    """The fused step at its fixed shape (searching/rnn/fused_proxy.StaticStep, what
    ``--fused --cuda_graphs`` runs) replayed as a CUDA graph (CUDA only)."""
    from searching.fused.cuda_graph import GraphedStep
    from searching.fused.rnn_trainer import StaticStep

    build = lambda g: RNNModel(g, corpus.ntokens, 100, embedding=emb)  # noqa: E731
    model, _ = FusedRNNCandidates.from_members(parent, graphs, build, range(len(graphs)))
    model.to(device)
    static = StaticStep(model, list(model.parameters()), train, CLIP, 0.0)
    graphed = GraphedStep(static, static, device)
    A = len(graphs)
    meta = torch.tensor([[BPTT, LR, 1.0]] * A, device=device)
    state = {"i": 0}
    span = train.size(0) - BPTT - 1 - A * 7

    def step():
        i = state["i"] = (state["i"] + BPTT) % span
        rows = (torch.arange(BPTT, device=device).view(1, -1) + i
                + 7 * torch.arange(A, device=device).view(-1, 1))
        graphed(rows, meta)
    return step


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/penn_proxy")
    p.add_argument("--fused_members", type=int, default=10, help="members of the fused group")
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    corpus = Corpus(args.data)
    emb = embedding_matrix(corpus.dictionary.idx2word, 100, None, 0)
    train = batchify(corpus.train, BATCH, device)
    parent = CellGraph.complete(6, list(REFERENCE_OPS), space="rnn")
    edges = parent.edge_list[:args.fused_members]
    variants = [("separate", 1, separate_step(parent.remove_edge(*edges[0]), corpus, emb,
                                              train, device), 1)]
    if args.fused_members > 1:
        graphs = [parent.remove_edge(*e) for e in edges]
        variants.append((f"fused k{len(graphs)}", len(graphs),
                         fused_step(parent, graphs, corpus, emb, train, device), 1))
        if device.type == "cuda":
            variants.append((f"graphed fused k{len(graphs)}", len(graphs),  # 3 warm-up steps,
                             graphed_fused_step(parent, graphs, corpus, emb, train, device),
                             5))  # the capture, then a replay
    print(f"device {device}, threads {torch.get_num_threads()}, {corpus.ntokens} words, "
          f"window {BPTT} x {BATCH}")
    for name, members, step, warmup in variants:
        _, ms = time_step(step, device, warmup - 1, args.steps)  # untimed: `warmup` steps
        extra = f", {count_kernels(step)} kernels/step" if device.type == "cuda" else ""
        print(f"{name:12s}: {ms:8.1f} ms/step, {ms / members:8.1f} ms per candidate-step{extra}")


if __name__ == "__main__":
    main()
