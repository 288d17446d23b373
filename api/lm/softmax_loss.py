"""Fused tied-decoder cross-entropy: ``F.cross_entropy(h @ W.T + b, y)`` in fewer passes.

At the proxy's sizes (4,480 words x 7,002 classes per batch) the decoder's three matmuls
are most of the work and already near the CPU's peak, so what is left to save is memory
passes over the (V, n) logits: see :class:`_LinearCrossEntropy`.
"""
from __future__ import annotations

import threading

import torch

# Softmax range guards of _LinearCrossEntropy (base-2 exponents).
EXP2_FLOOR = 100.0       # with a max shift: u >= 2^-100 relative to the column max
EXP2_FLOOR_ABS = 100.0   # without: u >= 2^-100 absolute ...
SUM_MIN, SUM_MAX = 2.0 ** -40, 2.0 ** 100  # ... accepted while the column sums stay in here

_workspace = threading.local()


def _logits_buffer(rows: int, cols: int, like: torch.Tensor) -> torch.Tensor:
    """A reused scratch matrix: a fresh 100 MB tensor per batch costs more in page faults
    than the softmax itself."""
    key = (like.device, like.dtype)
    cache = getattr(_workspace, "buffers", None)
    if cache is None:
        cache = _workspace.buffers = {}
    buf = cache.get(key)
    if buf is None or buf.numel() < rows * cols:
        buf = cache[key] = like.new_empty(rows * cols)
    return buf[:rows * cols].view(rows, cols)


LOG2E = 1.4426950408889634


def _softmax_terms(w2, h_aug, targets, shift: bool):
    """Base-2 logits z = (h W^T + b) log2(e) as (V, n); returns u = 2^(z - m) in ``z``'s
    buffer, s = sum(u), m, and the target logits. Without ``shift`` m = 0 (no max pass);
    the caller checks that s stayed in range and otherwise asks again with the column max."""
    z = torch.mm(w2, h_aug.t(), out=_logits_buffer(w2.size(0), h_aug.size(0), h_aug))
    picked = z.gather(0, targets).squeeze(0)
    if shift:
        m = z.amax(0)
        z.sub_(m).clamp_min_(-EXP2_FLOOR)
    else:
        m = None
        z.clamp_min_(-EXP2_FLOOR_ABS)
    z.exp2_()
    return z, z.sum(0), m, picked


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean CE of softmax(h W^T + b), the gradient formed in the forward while logits are hot.

    Written for memory passes, since the matmuls are already near peak: logits are formed
    transposed (V, n), the layout with the fastest matmuls here, in base 2 (log2(e) and the
    bias ride in the matmul), into a reused buffer; no max pass unless the sums leave a safe
    range; the softmax normalisation and the one-hot are applied to the small (n, D) and
    (V, D) operands instead of the (V, n) matrix. Entries below 2^-100 of their column's sum
    scale are clamped so that no denormal float appears (they slow every later pass
    several-fold on x86); the softmax changes by less than 1e-8 relative, the loss not at all.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk):
        need = any(ctx.needs_input_grad[:3])
        n = h.size(0)
        w2 = torch.cat([weight, bias.unsqueeze(1)], 1).mul_(LOG2E)  # (V, D + 1), base 2
        total = h.new_zeros(())
        dh = torch.empty_like(h) if need else None
        dw = torch.zeros_like(weight) if need else None
        db = torch.zeros_like(bias) if need else None
        for a in range(0, n, chunk):
            hc, yc = h[a:a + chunk], targets[a:a + chunk]
            h_aug = torch.cat([hc, hc.new_ones(len(hc), 1)], 1)
            u, s, m, picked = _softmax_terms(w2, h_aug, yc.unsqueeze(0), shift=False)
            if not bool(torch.all((s >= SUM_MIN) & (s <= SUM_MAX))):
                u, s, m, picked = _softmax_terms(w2, h_aug, yc.unsqueeze(0), shift=True)
            lse2 = s.log2() if m is None else s.log2().add_(m)
            total += (lse2 - picked).sum() / LOG2E
            if need:
                f = s.reciprocal_().mul_(1.0 / n).unsqueeze(1)   # per-word 1 / (n sum)
                rows = dh[a:a + chunk]
                torch.mm(u.t(), weight, out=rows).mul_(f)     # softmax part
                rows.sub_(weight[yc], alpha=1.0 / n)           # one-hot part
                dw.addmm_(u, hc * f)
                dw.index_add_(0, yc, hc, alpha=-1.0 / n)
                db.addmv_(u, f.squeeze(1))
                db.index_add_(0, yc, hc.new_full((len(yc),), -1.0 / n))
        if need:
            ctx.save_for_backward(dh, dw, db)
        return total / n

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        dh, dw, db = ctx.saved_tensors
        return dh * grad, dw * grad, db * grad, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         targets: torch.Tensor, chunk: int = 4608) -> torch.Tensor:
    """``F.cross_entropy(h @ weight.T + bias, targets)``, faster and lighter on memory.

    ``chunk`` words at a time: the default holds a proxy batch (128 x 35) in one piece and
    bounds the reused logits buffer (V x chunk floats) for larger evaluation batches."""
    return _LinearCrossEntropy.apply(h, weight, bias, targets, chunk)
