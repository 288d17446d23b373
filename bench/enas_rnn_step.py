"""One ENAS RNN shared-weight step (sample a cell, forward, backward, SGD), ours against the
same maths computed as carpedm20/ENAS-pytorch's cell does it.

    python bench/enas_rnn_step.py [--hid 1000] [--vocab 10000] [--threads 1] [--repeats 5]

Ours (:class:`api.spaces.enas_rnn.supernet.SharedCell`): x W0x for all time steps in one
matmul, the nodes reading one state in one matmul ([W^c | W^h] of every reader concatenated
once per forward). The reference: per time step ``w_xc(x) + w_hc(h)`` and ``w_xh(x) +
w_hh(h)`` (four matmuls), per node separate ``W^c`` and ``W^h`` products (two matmuls), as
carpedm20's ``RNN.cell``. Same weights, same cells (one fixed list of sampled cells), batch
64, bptt 35; prints the median seconds per step of each, interleaved, and the ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from api.lm.softmax_loss import linear_cross_entropy
from api.spaces import get_space
from api.spaces.enas_rnn import ACTIVATIONS, arc_loose_ends
from api.spaces.enas_rnn.supernet import MAX_HIDDEN_NORM, edge_index
from searching.enas.rnn_controller import RNNController

F = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda v: v, "sigmoid": torch.sigmoid}


def reference_cell(cell, arc, x, h):
    """carpedm20's computation (no grouping, per-step input products)."""
    H, n, ninp = cell.nhid, (len(arc) + 1) // 2, cell.ninp
    Wx, Wh = cell.W0[:ninp], cell.W0[ninp:]
    outs = []
    for t in range(x.size(0)):
        c0 = torch.sigmoid(x[t] @ Wx[:, :H] + h @ Wh[:, :H] + cell.b0[:H])
        g0 = x[t] @ Wx[:, H:] + h @ Wh[:, H:] + cell.b0[H:]
        s = [c0 * F[ACTIVATIONS[arc[0]]](g0) + (1 - c0) * h]
        for k in range(1, n):
            j = arc[2 * k - 1]
            w = cell.Wp[edge_index(k, j)]
            c = torch.sigmoid(s[j] @ w[:, :H])
            s.append(c * F[ACTIVATIONS[arc[2 * k]]](s[j] @ w[:, H:]) + (1 - c) * s[j])
        m = torch.stack([s[e] for e in arc_loose_ends(arc)]).mean(0)
        outs.append(m)
        h = m * torch.clamp(MAX_HIDDEN_NORM / m.detach().norm(dim=-1, keepdim=True), max=1.0)
    out = torch.stack(outs)
    T, B, _ = out.shape
    return cell.bn(out.reshape(T * B, H)).view(T, B, H), h


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hid", type=int, default=1000)
    p.add_argument("--vocab", type=int, default=10000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    net = get_space("enas-rnn").supernet(a.vocab, emsize=a.hid, nhid=a.hid, wdrop=0.0).to(dev)
    arcs, _, _ = RNNController().sample(a.repeats + 1, torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    x = torch.randint(0, a.vocab, (35, 64), device=dev)
    y = torch.randint(0, a.vocab, (35, 64), device=dev)

    def step(arc, ours: bool) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        net.set_arc(arc)
        if ours:
            out, _ = net(x, net.init_hidden(64))
        else:
            emb = net.encoder(x)
            out, _ = reference_cell(net.cell, arc, emb, net.init_hidden(64))
        loss = linear_cross_entropy(out.reshape(-1, a.hid), net.decoder_weight,
                                    net.decoder_bias, y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    net.eval()  # no dropout masks: both paths compute the same function
    net.cell.bn.train()
    step(arcs[0], True), step(arcs[0], False)  # warm-up
    ours, ref = [], []
    for arc in arcs[1:]:
        ours.append(step(arc, True))
        ref.append(step(arc, False))
    mo, mr = statistics.median(ours), statistics.median(ref)
    print(f"enas_rnn_step hid={a.hid} vocab={a.vocab} threads={a.threads} device={a.device}: "
          f"ours {mo:.3f} s, carpedm20-style {mr:.3f} s, speedup {mr / mo:.2f}x")


if __name__ == "__main__":
    main()
