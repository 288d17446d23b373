"""One search step (weights + architecture) of GDAS, DARTS-V1 and DARTS-V2 on the NAS-Bench-201
space: ours against the official implementation's supernets (AutoDL-Projects' ``xautodl``).

At paper settings (C=16, N=5, batch 64, 32x32, 10 classes), with the same optimizer settings
and the same random batches on both sides; ours and official interleaved, median per step,
then the search projected to paper settings on this machine (GDAS 250 epochs, DARTS 50).

    pip install -e .[bench]      # xautodl (bench only)
    python bench/oneshot_speed.py [--threads 2] [--repeats 5] [--methods gdas,darts-v1,darts-v2]

Results: bench/README.md. Fidelity notes: docs/fidelity/darts.md, docs/fidelity/gdas.md.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import traceback
from copy import deepcopy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

C, N, MAX_NODES, NUM_CLASSES, BATCH = 16, 5, 4, 10, 64
WEIGHTS_HALF = 25_000
EPOCHS = {"gdas": 250, "darts-v1": 50, "darts-v2": 50}
OFFICIAL_NAME = {"gdas": "GDAS", "darts-v1": "DARTS-V1", "darts-v2": "DARTS-V2"}
#: The weights' optimizer, both sides (AutoDL's NB201 GDAS/DARTS configs; our defaults there).
SGD = dict(lr=0.025, lr_min=0.001, momentum=0.9, nesterov=True, weight_decay=5e-4,
           grad_clip=5.0)
ARCH = dict(lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)


def make_batches(count: int, seed: int):
    """``count`` (weights batch, architecture batch) pairs of random 32x32 images."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        pair = []
        for _ in range(2):
            x = torch.randn(BATCH, 3, 32, 32, generator=g)
            y = torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)
            pair.append((x, y))
        out.append(tuple(pair))
    return out


# ---------------------------------------------------------------------------- ours
def build_ours(method_name: str, track_running_stats: bool):
    from searching.darts.method import DARTS
    from searching.gdas.method import GDAS
    from searching.oneshot.trainer import OneShotConfig, OneShotSearch

    # train_search.py's NB201 defaults: V1 takes the weight step first, as AutoDL's DARTS-V1
    method = GDAS(seed=0) if method_name == "gdas" else DARTS(
        unrolled=method_name == "darts-v2",
        step_order="arch_first" if method_name == "darts-v2" else "weights_first")
    config = OneShotConfig(space="nas-bench-201", epochs=EPOCHS[method_name], batch_size=BATCH,
                           supernet=dict(C=C, N=N, affine=False,
                                         track_running_stats=track_running_stats), **SGD)
    search = OneShotSearch("/nonexistent-bench-root", config, method, torch.device("cpu"),
                           progress=False, plots=False)
    net = search.build_supernet(SimpleNamespace(num_classes=NUM_CLASSES))
    # the trainer's weights optimizer, its lr set for the epoch, the method bound, as in run()
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=config.lr, momentum=config.momentum,
                            nesterov=config.nesterov, weight_decay=config.weight_decay)
    method.bind(net, w_opt, config)
    net.train()
    epoch = 0
    for group in w_opt.param_groups:
        group["lr"] = search.epoch_lr(epoch)
    method.epoch_start(epoch)
    counter = [0]

    def step(train_batch, val_batch):
        method.step(net, train_batch, val_batch, epoch, counter[0])
        counter[0] += 1

    return step


# ---------------------------------------------------------------------------- official
def _cat(xs):
    return torch.cat([x.reshape(-1) for x in xs])


def build_official(method_name: str, track_running_stats: bool):
    from xautodl.config_utils import dict2config
    from xautodl.models import get_cell_based_tiny_net, get_search_spaces
    from xautodl.procedures import get_optim_scheduler

    space = get_search_spaces("cell", "nas-bench-201")
    model = get_cell_based_tiny_net(dict2config(
        {"name": OFFICIAL_NAME[method_name], "C": C, "N": N, "max_nodes": MAX_NODES,
         "num_classes": NUM_CLASSES, "space": space, "affine": False,
         "track_running_stats": bool(track_running_stats)}, None))
    opt_config = dict2config(
        {"optim": "SGD", "LR": SGD["lr"], "decay": SGD["weight_decay"],
         "momentum": SGD["momentum"], "nesterov": SGD["nesterov"], "scheduler": "cos",
         "eta_min": SGD["lr_min"], "epochs": EPOCHS[method_name], "warmup": 0,
         "criterion": "Softmax", "class_num": NUM_CLASSES}, None)
    w_optimizer, w_scheduler, criterion = get_optim_scheduler(model.get_weights(), opt_config)
    a_optimizer = torch.optim.Adam(model.get_alphas(), **ARCH)
    network = nn.DataParallel(model)  # as the official scripts; on a CPU it calls the module
    network.train()
    if method_name == "gdas":
        model.set_tau(10.0)  # tau_max at epoch 0, as ours
    w_scheduler.update(0, 0.0)
    steps_per_epoch = math.ceil(WEIGHTS_HALF / BATCH)
    counter = [0]
    clip = SGD["grad_clip"]

    def weight_step(xw, yw):
        w_optimizer.zero_grad()
        _, logits = network(xw)
        loss = criterion(logits, yw)
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), clip)
        w_optimizer.step()
        return loss.detach(), logits.detach()

    def arch_step_first_order(xa, ya):
        a_optimizer.zero_grad()
        _, logits = network(xa)
        loss = criterion(logits, ya)
        loss.backward()
        a_optimizer.step()
        return loss.detach(), logits.detach()

    def hessian_vector_product(vector, xw, yw, r=1e-2):
        eps = r / _cat(vector).norm()
        weights, alphas = network.module.get_weights(), network.module.get_alphas()
        for p, v in zip(weights, vector):
            p.data.add_(v, alpha=eps)
        _, logits = network(xw)
        grads_p = torch.autograd.grad(criterion(logits, yw), alphas)
        for p, v in zip(weights, vector):
            p.data.sub_(v, alpha=2 * eps)
        _, logits = network(xw)
        grads_n = torch.autograd.grad(criterion(logits, yw), alphas)
        for p, v in zip(weights, vector):
            p.data.add_(v, alpha=eps)
        return [(a - b).div_(2 * eps) for a, b in zip(grads_p, grads_n)]

    def arch_step_unrolled(xw, yw, xa, ya):
        a_optimizer.zero_grad()
        # the virtual step w' = w - lr (momentum * buffer + dL_train/dw + wd * w)
        _, logits = network(xw)
        loss = criterion(logits, yw)
        group = w_optimizer.param_groups[0]
        lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
        weights = network.module.get_weights()
        with torch.no_grad():
            theta = _cat(weights)
            try:
                moment = _cat(w_optimizer.state[v]["momentum_buffer"] for v in weights)
                moment = moment.mul_(momentum)
            except Exception:
                moment = torch.zeros_like(theta)
            dtheta = _cat(torch.autograd.grad(loss, weights)) + wd * theta
            params = theta.sub(moment + dtheta, alpha=lr)
        unrolled = deepcopy(network)
        state, new, offset = unrolled.state_dict(), {}, 0
        for name, v in network.named_parameters():
            if "arch_parameters" in name:
                continue
            length = int(np.prod(v.size()))
            new[name] = params[offset:offset + length].view(v.size())
            offset += length
        state.update(new)
        unrolled.load_state_dict(state)
        unrolled.zero_grad()
        _, u_logits = unrolled(xa)
        u_loss = criterion(u_logits, ya)
        u_loss.backward()
        dalpha = unrolled.module.arch_parameters.grad
        vector = [v.grad.data for v in unrolled.module.get_weights()]
        [implicit] = hessian_vector_product(vector, xw, yw)
        dalpha.data.sub_(implicit.data, alpha=lr)
        alpha = network.module.arch_parameters
        if alpha.grad is None:
            alpha.grad = deepcopy(dalpha)
        else:
            alpha.grad.data.copy_(dalpha.data)
        a_optimizer.step()
        return u_loss.detach(), u_logits.detach()

    def step(train_batch, val_batch):
        (xw, yw), (xa, ya) = train_batch, val_batch
        w_scheduler.update(None, 1.0 * (counter[0] % steps_per_epoch) / steps_per_epoch)
        if method_name == "darts-v2":
            arch_step_unrolled(xw, yw, xa, ya)
            weight_step(xw, yw)
        else:  # GDAS.py and DARTS-V1.py: weights first, then the architecture
            weight_step(xw, yw)
            arch_step_first_order(xa, ya)
        counter[0] += 1

    return step


# ---------------------------------------------------------------------------- timing
def time_block(step, batches, start: int, count: int):
    """(wall seconds, process CPU seconds) per step over ``count`` steps."""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(count):
        train_batch, val_batch = batches[(start + i) % len(batches)]
        step(train_batch, val_batch)
    return (time.perf_counter() - t0) / count, (time.process_time() - c0) / count


def fmt_hours(ms_per_step: float, epochs: int) -> float:
    return ms_per_step / 1000.0 * (WEIGHTS_HALF / BATCH) * epochs / 3600.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--repeats", type=int, default=5, help="timed blocks per side (default 5)")
    p.add_argument("--steps", type=int, default=1, help="steps per timed block (default 1)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per side (default 2)")
    p.add_argument("--methods", default="gdas,darts-v1,darts-v2")
    p.add_argument("--track_running_stats", type=int, choices=(0, 1), default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} cpus; "
          f"NB201 supernet C={C} N={N} batch {BATCH} 32x32, {NUM_CLASSES} classes; "
          f"{args.warmup} warm-up steps, median of {args.repeats} interleaved blocks of "
          f"{args.steps} step(s)")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    n_batches = args.warmup + args.repeats * args.steps
    batches = make_batches(max(n_batches, 1), args.seed)
    rows = []
    for name in methods:
        if name not in EPOCHS:
            print(f"{name}: unknown method (choose gdas, darts-v1, darts-v2)")
            continue
        sides = {}
        for side, builder in (("ours", build_ours), ("official", build_official)):
            try:
                torch.manual_seed(args.seed)
                sides[side] = builder(name, bool(args.track_running_stats))
            except Exception as exc:  # report, go on with the other side / method
                print(f"{name} {side}: failed to build: {type(exc).__name__}: {exc}")
                traceback.print_exc(limit=3)
        times = {side: [] for side in sides}
        cpu = {side: [] for side in sides}
        failed = set()
        for side, step in sides.items():
            try:
                time_block(step, batches, 0, args.warmup)
            except Exception as exc:
                print(f"{name} {side}: step failed: {type(exc).__name__}: {exc}")
                traceback.print_exc(limit=3)
                failed.add(side)
        for r in range(args.repeats):
            start = args.warmup + r * args.steps
            order = list(sides) if r % 2 == 0 else list(reversed(list(sides)))
            for side in order:
                if side in failed:
                    continue
                try:
                    wall, used = time_block(sides[side], batches, start, args.steps)
                    times[side].append(1000.0 * wall)
                    cpu[side].append(1000.0 * used)
                except Exception as exc:
                    print(f"{name} {side}: step failed: {type(exc).__name__}: {exc}")
                    failed.add(side)
        med = {s: statistics.median(t) for s, t in times.items() if t and s not in failed}
        ours, official = med.get("ours"), med.get("official")
        line = [f"{name:9s}"]
        line.append(f"ours {ours:9.1f} ms/step" if ours else "ours       n/a")
        line.append(f"official {official:9.1f} ms/step" if official else "official       n/a")
        line.append(f"ratio (official/ours) {official / ours:5.2f}x" if ours and official
                    else "ratio n/a")
        print("  ".join(line), flush=True)
        for side, t in times.items():
            print(f"    {side:8s} blocks (ms/step): " + ", ".join(f"{v:.1f}" for v in t)
                  + (f"  (min {min(t):.1f})" if t else ""))
        cmed = {s: statistics.median(t) for s, t in cpu.items() if t and s not in failed}
        if cmed.get("ours") and cmed.get("official"):
            # process CPU time (all threads): steadier than wall time when other jobs share
            # the cores
            print(f"    cpu time: ours {cmed['ours']:.1f} ms/step, official "
                  f"{cmed['official']:.1f} ms/step, ratio "
                  f"{cmed['official'] / cmed['ours']:.2f}x")
        rows.append((name, ours, official))
        del sides

    print(f"\nprojected search at paper settings on this machine ({WEIGHTS_HALF:,} / {BATCH} = "
          f"{WEIGHTS_HALF / BATCH:.1f} steps per epoch; no validation passes counted):")
    for name, ours, official in rows:
        e = EPOCHS[name]
        o = f"{fmt_hours(ours, e):7.1f} h" if ours else "    n/a"
        f = f"{fmt_hours(official, e):7.1f} h" if official else "    n/a"
        print(f"  {name:9s} {e:3d} epochs: ours {o}  official {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
