"""Grouped convolution versus batched matmul for the fused candidates' convolutions.

    python bench/fused_conv.py [--device auto] [--members 10] [--batch 128] [--threads 2]

searching/fused/cnn_model.py runs M members' convolutions as one grouped ``conv2d`` on
activations laid out ``(B, M*C, H, W)``; the fused model should use grouped convs or batched
matmuls, whichever measures faster. This times forward + backward of both formulations (3x3,
1x1 and depthwise 3x3 at the paper proxy skeleton's shapes, M = 10, batch 128), each pair
checked equal before it is timed; the figure is the median of ``--repeats`` runs.

Results: bench/README.md.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import List, Tuple

import torch
import torch.nn.functional as F

from api.train.distributed import resolve_device
from api.spaces.autoshrink_cnn.network import NetworkSpec


def grouped_conv(x: torch.Tensor, w: torch.Tensor, groups: int) -> torch.Tensor:
    """The fused model's formulation: one grouped conv, stride 1, same padding."""
    return F.conv2d(x, w, None, 1, w.shape[-1] // 2, 1, groups)


def bmm_conv(x: torch.Tensor, w: torch.Tensor, members: int) -> torch.Tensor:
    """``grouped_conv(x, w, members)`` as im2col + one ``bmm`` over members.

    x: (B, M*Cin, H, W); w: (M*Cout, Cin, k, k). Returns (B, M*Cout, H, W)."""
    b, mc, h, wd = x.shape
    M, k = members, w.shape[-1]
    cin, cout = mc // M, w.shape[0] // M
    cols = F.unfold(x, k, padding=k // 2) if k > 1 else x.reshape(b, mc, h * wd)
    cols = cols.view(b, M, cin * k * k, h * wd).permute(1, 2, 0, 3).reshape(M, cin * k * k, -1)
    out = torch.bmm(w.reshape(M, cout, cin * k * k), cols)           # (M, Cout, B*H*W)
    return out.view(M, cout, b, h, wd).permute(2, 0, 1, 3, 4).reshape(b, M * cout, h, wd)


def bmm_member_major(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv on a member-major x (M, Cin, B*H*W) -> (M, Cout, B*H*W); w (M*Cout, Cin, 1, 1)."""
    M = x.shape[0]
    return torch.bmm(w.reshape(M, -1, x.shape[1]), x)


def einsum_depthwise(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``grouped_conv(x, w, x.shape[1])`` (depthwise) as im2col + an einsum over the taps.

    x: (B, C, H, W); w: (C, 1, k, k)."""
    b, c, h, wd = x.shape
    k = w.shape[-1]
    cols = F.unfold(x, k, padding=k // 2).view(b, c, k * k, h * wd)
    return torch.einsum("bckp,ck->bcp", cols, w.view(c, k * k)).view(b, c, h, wd)


def cases(members: int, batch: int, device, dtype=torch.float32) -> List[Tuple[str, List]]:
    """(shape name, [(formulation name, fn, inputs)]) at the proxy skeleton's shapes."""
    spec, M, out = NetworkSpec(), members, []
    size = spec.image_size
    for c, pool in zip(spec.node_channels(), spec.pool):
        size //= pool

        def t(*shape):
            return torch.randn(*shape, device=device, dtype=dtype) * 0.1

        x3, w3 = t(batch, M * c, size, size), t(M * c, c, 3, 3)
        out.append((f"conv3x3 {c}->{c} @{size}px", [
            ("grouped", lambda x, w: grouped_conv(x, w, M), (x3, w3)),
            ("unfold+bmm", lambda x, w: bmm_conv(x, w, M), (x3, w3))]))
        x1, w1 = t(batch, M * 4 * c, size, size), t(M * c, 4 * c, 1, 1)
        xmm = x1.view(batch, M, 4 * c, -1).permute(1, 2, 0, 3).reshape(M, 4 * c, -1)
        out.append((f"conv1x1 {4 * c}->{c} @{size}px", [
            ("grouped", lambda x, w: grouped_conv(x, w, M), (x1, w1)),
            ("bmm", lambda x, w: bmm_conv(x, w, M), (x1, w1)),
            ("bmm member-major", bmm_member_major, (xmm.contiguous(), w1))]))
        wd = t(M * 4 * c, 1, 3, 3)
        out.append((f"dw3x3 {4 * c} @{size}px", [
            ("grouped", lambda x, w: grouped_conv(x, w, x.shape[1]), (x1, wd)),
            ("unfold+einsum", einsum_depthwise, (x1, wd))]))
    return out


def forward_backward(fn, inputs, grad=None):
    """(output, input gradients) of fn; ``grad`` the output's gradient (ones when None)."""
    leaves = [i.detach().requires_grad_(True) for i in inputs]
    y = fn(*leaves)
    y.backward(torch.ones_like(y) if grad is None else grad)
    return y.detach(), [v.grad for v in leaves]


def to_fused_layout(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A member-major (M, C, B*H*W) result in the fused (B, M*C, H, W) layout."""
    M, c, _ = y.shape
    b, _, h, w = like.shape
    return y.view(M, c, b, h, w).permute(2, 0, 1, 3, 4).reshape(b, M * c, h, w)


def close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    """Equal up to ``tol`` times the larger magnitude (sums of B*H*W terms round at that scale)."""
    return bool((a - b).abs().max() <= tol * max(a.abs().max(), b.abs().max(), 1e-30))


def agree(a, b, member_major: bool, tol: float = 1e-4) -> bool:
    """Outputs and weight gradients of two formulations agree (input layouts may differ)."""
    (ya, ga), (yb, gb) = a, b
    if member_major:
        yb = to_fused_layout(yb, ya)
    return close(ya, yb, tol) and close(ga[-1], gb[-1], tol)


def time_ms(fn, inputs, device, warmup: int, repeats: int) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        forward_backward(fn, inputs)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward_backward(fn, inputs)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv=None) -> List[Tuple[str, List[Tuple[str, float]]]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU x{torch.get_num_threads()} threads"
    print(f"device: {where}; M={args.members}, batch {args.batch}, forward+backward, "
          f"median of {args.repeats}")
    report = []
    for shape, forms in cases(args.members, args.batch, device):
        ref = forward_backward(forms[0][1], forms[0][2])
        for name, fn, inputs in forms[1:]:
            if not agree(ref, forward_backward(fn, inputs), name.endswith("member-major")):
                raise SystemExit(f"{shape}: {name} disagrees with the grouped conv")
        del ref
        times = [(name, time_ms(fn, inputs, device, args.warmup, args.repeats))
                 for name, fn, inputs in forms]
        grouped_ms = times[0][1]
        cells = ", ".join(f"{n} {ms:8.2f} ms ({ms / grouped_ms:4.2f}x)" for n, ms in times)
        print(f"{shape:22s} {cells}  -> {min(times, key=lambda t: t[1])[0]} fastest")
        report.append((shape, times))
    return report


if __name__ == "__main__":
    main()
