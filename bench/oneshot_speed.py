"""One search step (weights + architecture) of GDAS, DARTS-V1 and DARTS-V2 on the NAS-Bench-201
space: ours against the official implementation's supernets (AutoDL-Projects' ``xautodl``).

Like with like: at paper settings (C=16, N=5, batch 64, 32x32, 10 classes) both sides start
from the same weights and alphas, get the same random batches and optimizer settings and, for
GDAS, the same Gumbel noise for every forward, so they sample the same cells (a sampled NB201
cell costs 7.8 to 220 MFLOPs, so unequal samples would decide the ratio). A fixed sequence of
steps runs as interleaved pairs (ours and official on step i, alternating who goes first);
the ratio of the sequence's totals is the headline, with the median and spread of per-pair
ratios, then the search is projected to paper settings (GDAS 250 epochs, DARTS 50).

    pip install -e .[bench]      # xautodl (bench only)
    python bench/oneshot_speed.py [--threads 2] [--methods gdas,darts-v1,darts-v2]

Results: bench/README.md. Fidelity notes: docs/fidelity/darts.md, docs/fidelity/gdas.md.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import traceback
from copy import deepcopy
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

C, N, MAX_NODES, NUM_CLASSES, BATCH = 16, 5, 4, 10, 64
WEIGHTS_HALF = 25_000
EPOCHS = {"gdas": 250, "darts-v1": 50, "darts-v2": 50}
#: Timed step pairs per method by default: >= 30 for GDAS, whose steps vary with the sample;
#: DARTS computes every op at every step, so its steps vary only with the machine.
DEFAULT_STEPS = {"gdas": 40, "darts-v1": 10, "darts-v2": 6}
OFFICIAL_NAME = {"gdas": "GDAS", "darts-v1": "DARTS-V1", "darts-v2": "DARTS-V2"}
#: The weights' optimizer, both sides (AutoDL's NB201 GDAS/DARTS configs; our defaults there).
SGD = dict(lr=0.025, lr_min=0.001, momentum=0.9, nesterov=True, weight_decay=5e-4,
           grad_clip=5.0)
ARCH = dict(lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
#: NB201's edges as AutoDL names them (``to<-from``), in our edge order.
EDGE_KEYS = ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")


def make_batches(count: int, seed: int, batch: int = BATCH, size: int = 32):
    """``count`` (weights batch, architecture batch) pairs of random ``size``-pixel images."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        pair = []
        for _ in range(2):
            x = torch.randn(batch, 3, size, size, generator=g)
            y = torch.randint(0, NUM_CLASSES, (batch,), generator=g)
            pair.append((x, y))
        out.append(tuple(pair))
    return out


# ---------------------------------------------------------------------------- forced samples
class GumbelSequence:
    """A fixed sequence of Gumbel noise tensors (edges x ops), one per supernet forward.

    Entry k is what AutoDL's ``TinyNetworkGDAS.forward`` draws right after
    ``torch.manual_seed(seeds[k])`` (``-log`` of standard exponentials shaped like the alphas;
    seeds whose draw holds an infinity are skipped, as its loop would redraw). The official
    side is fed by seeding the global generator before each forward, ours by handing the
    tensor to the Gumbel sample in place of its own draw: the same noise on both sides, and
    with the same alphas the same sampled cell."""

    def __init__(self, count: int, seed: int, shape=(6, 5)) -> None:
        self.seeds: List[int] = []
        self.noise: List[torch.Tensor] = []
        k = 0
        while len(self.noise) < count:
            s = 1_000_003 * (seed + 1) + k
            k += 1
            e = torch.empty(shape).exponential_(generator=torch.Generator().manual_seed(s))
            g = -e.log()
            if torch.isfinite(g).all():
                self.seeds.append(s)
                self.noise.append(g)

    def cursor(self) -> "GumbelCursor":
        return GumbelCursor(self)


class GumbelCursor:
    """One side's position in a :class:`GumbelSequence`."""

    def __init__(self, seq: GumbelSequence) -> None:
        self.seq, self.position = seq, 0

    def _take(self) -> int:
        if self.position >= len(self.seq.noise):
            raise RuntimeError(f"the Gumbel sequence ran out after {self.position} forwards")
        self.position += 1
        return self.position - 1

    def next_noise(self) -> torch.Tensor:
        return self.seq.noise[self._take()]

    def next_seed(self) -> int:
        return self.seq.seeds[self._take()]


def forced_gumbel_hard(alpha: torch.Tensor, tau: float, gumbels: torch.Tensor):
    """:func:`api.spaces.supernet.gumbel_hard` with the noise given instead of drawn."""
    logp = torch.log_softmax(alpha, dim=-1)
    probs = torch.softmax((logp + gumbels.to(alpha)) / tau, dim=-1)
    index = probs.argmax(dim=-1, keepdim=True)
    one_hot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
    return one_hot - probs.detach() + probs, index.squeeze(-1)


@contextlib.contextmanager
def forced_gumbels(cursor: GumbelCursor):
    """Within the block, our NB201 supernet's Gumbel samples take ``cursor``'s noise."""
    import api.spaces.nasbench201.supernet as nb201

    original = nb201.gumbel_hard
    nb201.gumbel_hard = lambda alpha, tau, generator=None: forced_gumbel_hard(
        alpha, tau, cursor.next_noise())
    try:
        yield
    finally:
        nb201.gumbel_hard = original


class SampleLog:
    """Which op of each edge of one search cell ran, per forward: forward hooks on the ops
    (a GDAS forward runs exactly one op per edge). ``forwards`` lists op-index tuples."""

    def __init__(self, edges: Sequence[Sequence[nn.Module]]) -> None:
        self.forwards: List[tuple] = []
        self._current: List[int] = []
        self._n = len(edges)
        for ops in edges:
            for j, op in enumerate(ops):
                op.register_forward_hook(lambda *_a, j=j: self._ran(j))

    def _ran(self, j: int) -> None:
        self._current.append(j)
        if len(self._current) == self._n:
            self.forwards.append(tuple(self._current))
            self._current = []


def copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Copy ``src``'s parameters and buffers into ``dst`` by position (our NB201 supernet and
    AutoDL's TinyNetworkGDAS/Darts list the same tensors in the same order: alphas, stem,
    cells with edges in string order and ops in OPS order, last BN, classifier)."""
    s, d = src.state_dict(), dst.state_dict()
    if [tuple(v.shape) for v in s.values()] != [tuple(v.shape) for v in d.values()]:
        raise ValueError("the two supernets' tensors differ in shape or order")
    with torch.no_grad():
        for a, b in zip(s.values(), d.values()):
            b.copy_(a)


# ---------------------------------------------------------------------------- ours
def build_ours(method_name: str, track_running_stats: bool,
               gumbels: Optional[GumbelCursor] = None, C: int = C, N: int = N):
    """(step, net, first search cell's ops per edge) of our method on the trainer's setup."""
    from searching.darts.method import DARTS
    from searching.gdas.method import GDAS
    from searching.oneshot.trainer import OneShotConfig, OneShotSearch
    from api.spaces.nasbench201.supernet import SearchCell

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
        with (forced_gumbels(gumbels) if gumbels is not None else contextlib.nullcontext()):
            method.step(net, train_batch, val_batch, epoch, counter[0])
        counter[0] += 1

    cell = next(m for m in net.cells if isinstance(m, SearchCell))
    return step, net, [list(ops) for ops in cell.edges]


# ---------------------------------------------------------------------------- official
def _cat(xs):
    return torch.cat([x.reshape(-1) for x in xs])


def build_official(method_name: str, track_running_stats: bool,
                   gumbels: Optional[GumbelCursor] = None, C: int = C, N: int = N):
    """(step, model, first search cell's ops per edge) of AutoDL's supernet driven as its
    ``exps/NAS-Bench-201-algos`` script; with ``gumbels`` the global generator is seeded
    from the sequence before every forward."""
    from xautodl.config_utils import dict2config
    from xautodl.models import get_cell_based_tiny_net, get_search_spaces
    from xautodl.procedures import get_optim_scheduler

    space = get_search_spaces("cell", "nas-bench-201")
    model = get_cell_based_tiny_net(dict2config(
        {"name": OFFICIAL_NAME[method_name], "C": C, "N": N, "max_nodes": MAX_NODES,
         "num_classes": NUM_CLASSES, "space": space, "affine": False,
         "track_running_stats": bool(track_running_stats)}, None))
    if gumbels is not None:
        def seed_noise(*_args) -> None:  # a pre-hook's return value would replace the input
            torch.manual_seed(gumbels.next_seed())

        model.register_forward_pre_hook(seed_noise)
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
    steps_per_epoch = -(-WEIGHTS_HALF // BATCH)
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

    from xautodl.models.cell_searchs.search_cells import NAS201SearchCell

    cell = next(m for m in model.cells if isinstance(m, NAS201SearchCell))
    return step, model, [list(cell.edges[k]) for k in EDGE_KEYS]


# ---------------------------------------------------------------------------- timing
def time_step(step: Callable, batch):
    """(wall ms, process CPU ms) of one step."""
    t0, c0 = time.perf_counter(), time.process_time()
    step(*batch)
    return 1000.0 * (time.perf_counter() - t0), 1000.0 * (time.process_time() - c0)


def paired_run(steps: Dict[str, Callable], batches, warmup: int, count: int):
    """``warmup`` untimed steps per side, then ``count`` timed pairs: step i of every side on
    batch ``warmup + i``, the order alternating from pair to pair. {side: {"wall": [...],
    "cpu": [...]}} in ms, one entry per timed step."""
    sides = list(steps)
    for i in range(warmup):
        for side in sides:
            steps[side](*batches[i])
    out = {side: {"wall": [], "cpu": []} for side in sides}
    for i in range(count):
        order = sides if i % 2 == 0 else sides[::-1]
        for side in order:
            wall, cpu = time_step(steps[side], batches[warmup + i])
            out[side]["wall"].append(wall)
            out[side]["cpu"].append(cpu)
    return out


def summarize(ours: Sequence[float], official: Sequence[float]) -> Dict[str, float]:
    """Per side median / mean / min / max ms; ``ratio``: official total over ours on the same
    sequence (the search's cost is the sum of its steps); per-pair ratios' median, quartiles,
    min and max."""
    if len(ours) != len(official) or not ours:
        raise ValueError("paired timings need the same, non-zero number of steps per side")
    pair = [b / a for a, b in zip(ours, official)]
    q1, _, q3 = statistics.quantiles(pair, n=4, method="inclusive") if len(pair) > 1 \
        else (pair[0], None, pair[0])
    out = {"ratio": sum(official) / sum(ours), "pair_median": statistics.median(pair),
           "pair_q1": q1, "pair_q3": q3, "pair_min": min(pair), "pair_max": max(pair),
           "steps": len(pair)}
    for side, t in (("ours", ours), ("official", official)):
        out.update({f"{side}_median": statistics.median(t), f"{side}_mean": statistics.fmean(t),
                    f"{side}_min": min(t), f"{side}_max": max(t)})
    return out


def fmt_hours(ms_per_step: float, epochs: int) -> float:
    return ms_per_step / 1000.0 * (WEIGHTS_HALF / BATCH) * epochs / 3600.0


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def sampled_mflops(forwards: Sequence[tuple]) -> Optional[List[float]]:
    """MFLOPs (NAS-Bench-201's count, CIFAR-10) of each sampled cell's network."""
    try:
        from api.spaces import get_space
        from api.spaces.nasbench201.cell import Cell

        space = get_space("nas-bench-201")
        return [space.count(Cell.from_op_indices(f), "cifar10")[1] / 1e6 for f in forwards]
    except Exception:  # a count is a side note, never a reason to fail the bench
        return None


def measure(name: str, steps: int, warmup: int, seed: int, track: bool, batches):
    """Build both sides from the same state, run the paired sequence; the summary dict (or
    None) and the sample logs."""
    gumbels = GumbelSequence(2 * (warmup + steps), seed) if name == "gdas" else None
    torch.manual_seed(seed)
    ours_step, ours_net, ours_ops = build_ours(name, track, gumbels and gumbels.cursor())
    off_step, off_net, off_ops = build_official(name, track, gumbels and gumbels.cursor())
    copy_state(ours_net, off_net)
    logs = {"ours": SampleLog(ours_ops), "official": SampleLog(off_ops)} if gumbels else {}
    t = paired_run({"ours": ours_step, "official": off_step}, batches, warmup, steps)
    return t, logs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--steps", type=int, default=0,
                   help="timed step pairs per method (default: gdas 40, darts-v1 10, "
                        "darts-v2 6: about 15 minutes on 2 loaded cores, 1 thread)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per side (default 1)")
    p.add_argument("--methods", default="gdas,darts-v1,darts-v2")
    p.add_argument("--track_running_stats", type=int, choices=(0, 1), default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in EPOCHS]
    if unknown or args.steps < 0 or args.warmup < 0:
        print(f"error: unknown method(s) {', '.join(unknown)} (choose gdas, darts-v1, darts-v2)"
              if unknown else "error: --steps and --warmup must be >= 0", file=sys.stderr)
        return 2

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
          f"cpus; NB201 supernet C={C} N={N} batch {BATCH} 32x32, {NUM_CLASSES} classes; "
          f"both sides from the same weights, alphas and batches (GDAS: the same Gumbel noise); "
          f"{args.warmup} warm-up steps per side, then interleaved step pairs; {load()}")
    rows = []
    for name in methods:
        steps = args.steps or DEFAULT_STEPS[name]
        batches = make_batches(args.warmup + steps, args.seed)
        before = load()
        try:
            t, logs = measure(name, steps, args.warmup, args.seed,
                              bool(args.track_running_stats), batches)
        except Exception as exc:  # report, go on with the next method
            print(f"{name}: failed: {type(exc).__name__}: {exc}")
            traceback.print_exc(limit=3)
            continue
        s = summarize(t["ours"]["wall"], t["official"]["wall"])
        c = summarize(t["ours"]["cpu"], t["official"]["cpu"])
        print(f"{name:9s} {steps} pairs: ours {s['ours_mean']:8.1f} ms/step (median "
              f"{s['ours_median']:.1f}), official {s['official_mean']:8.1f} (median "
              f"{s['official_median']:.1f}); official/ours {s['ratio']:.2f}x (total), per pair "
              f"median {s['pair_median']:.2f}x, IQR {s['pair_q1']:.2f}-{s['pair_q3']:.2f}, "
              f"range {s['pair_min']:.2f}-{s['pair_max']:.2f}", flush=True)
        print(f"    cpu time: ours {c['ours_mean']:.1f}, official {c['official_mean']:.1f} "
              f"ms/step, {c['ratio']:.2f}x (total), per pair median {c['pair_median']:.2f}x; "
              f"{before} -> {load()}")
        if logs:
            a, b = logs["ours"].forwards, logs["official"].forwards
            same = sum(x == y for x, y in zip(a, b))
            print(f"    samples: {same}/{max(len(a), len(b))} forwards ran the same cell on "
                  f"both sides")
            fl = sampled_mflops(a[2 * args.warmup:])
            if fl:
                print(f"    sampled networks: {statistics.fmean(fl):.1f} MFLOPs mean, "
                      f"{min(fl):.1f}-{max(fl):.1f}")
        rows.append((name, s))

    print(f"\nprojected search at paper settings on this machine ({WEIGHTS_HALF:,} / {BATCH} = "
          f"{WEIGHTS_HALF / BATCH:.1f} steps per epoch x mean ms/step; no validation passes):")
    for name, s in rows:
        e = EPOCHS[name]
        print(f"  {name:9s} {e:3d} epochs: ours {fmt_hours(s['ours_mean'], e):7.1f} h  "
              f"official {fmt_hours(s['official_mean'], e):7.1f} h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
