"""The CNN proxy estimator: train a candidate network from scratch on the proxy data.

Paper defaults (Adam 4e-3, batch 128, up to 20 epochs, the paper's early stops); returns the
best val accuracy and the proxy network's MACs at the proxy resolution. Departure: before each
validation the BN running statistics are re-estimated on ``bn_recal_batches`` training batches
(its own generator, so the training trajectory is unchanged); ``--bn_recal_batches 0`` restores
the original's evaluation with running averages.
Fidelity notes: docs/fidelity/autoshrink.md.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from api.spaces.complexity import count_macs, count_params
from api.datasets import DeviceBatches, ProxyData
from api.train.distributed import resolve_device
from api.runs.fingerprint import content_fingerprint
from api.spaces.dag.graph import CellGraph
from api.spaces.autoshrink_cnn.network import NetworkSpec, build_network, cpu_channels_last_ok
from api.scoped import cudnn_benchmark
from api.search.evaluator import Evaluator, Result, TrainingFailure


class Diverged(TrainingFailure):
    """The training loss became NaN or infinite."""


@dataclass
class CNNProxyTrainConfig:
    epochs: int = 20
    lr: float = 4e-3
    weight_decay: float = 1e-5
    batch_size: int = 128
    val_batch_size: int = 100
    train_acc_stop: float = 0.98     # end an epoch once the running train accuracy passes this
    patience: int = 5                # epochs without val improvement before stopping
    min_acc_epoch: int = 3           # at this epoch ...
    min_acc: float = 0.2             # ... stop if val accuracy is below this
    overfit_ratio: float = 3.0       # stop when val loss > ratio * train loss
    bn_recal_batches: int = 10       # BN statistics re-estimated on this many train batches
                                     # before each validation (0: the original's running stats)
    # Speed settings (runtime: not part of the results' identity). Measured on an H100 for the
    # 8-node proxy net at batch 128 (bench/cnn_step.py): fp32 16.6 ms/step, fp32 channels_last
    # 17.9, bf16 21.7, bf16 channels_last 30.7 -- these small nets are launch-bound, and bf16
    # and the layout change only add kernels. On CPU channels_last is 1.68x faster.
    channels_last: bool = True       # on CPU, where safe (see api.spaces.autoshrink_cnn.network)
    cuda_channels_last: bool = False
    cuda_bf16: bool = False          # bf16 autocast on CUDA
    cudnn_benchmark: bool = True
    device: str = "cpu"

    RUNTIME = ("device", "channels_last", "cuda_channels_last", "cuda_bf16", "cudnn_benchmark")

    def use_channels_last(self, device: torch.device) -> bool:
        return self.cuda_channels_last if device.type == "cuda" else self.channels_last


def next_accuracy_check(seen: int, correct: int, threshold: float) -> float:
    """The first image count at which the running accuracy could pass ``threshold``.

    With ``correct`` of ``seen`` right, n more images give at most (correct + n) / (seen + n),
    which exceeds the threshold only once n > (threshold * seen - correct) / (1 - threshold).
    Checking no earlier skips only checks that cannot trigger, so the epoch ends exactly where
    a check after every batch would end it, with far fewer host syncs on CUDA."""
    if threshold >= 1.0:
        return math.inf  # "accuracy > 1" never happens
    margin = max(threshold * seen - correct, 0.0)
    return seen + math.floor(margin / (1.0 - threshold) * (1.0 - 1e-9))


def stop_reason(cfg: CNNProxyTrainConfig, epoch: int, best_epoch: int, best_acc: float,
                train_loss: float, val_loss: float) -> Optional[str]:
    """Why training stops after ``epoch`` (None: it goes on), by the paper's early stops."""
    if epoch - best_epoch >= cfg.patience:
        return "patience"
    if epoch == cfg.min_acc_epoch and best_acc < cfg.min_acc:
        return "min_acc"
    if val_loss > cfg.overfit_ratio * train_loss:
        return "overfit"
    return None


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, batches, max_batches: int) -> int:
    """Re-estimate every BatchNorm's running statistics as the plain average over up to
    ``max_batches`` batches of ``batches`` (train-mode forward passes, no gradients).

    Returns the number of batches used (0 when the model has no BatchNorm or none was asked,
    in which case nothing is touched). Each layer's momentum is restored afterwards, so
    training continues exactly as before; the caller restores ``model.train()``/``eval()``.
    """
    bns = [m for m in model.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or max_batches <= 0:
        return 0
    momenta = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts the same
    model.train()
    used = 0
    try:
        for x in batches:
            if used >= max_batches:
                break
            model(x)
            used += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)
    return used


class TrainStep:
    """One proxy training step (forward, backward, Adam), with the epoch's summed loss and
    correct count accumulated on the device, in place: nothing in it reads a value back, so
    it can be captured as a CUDA graph (see :mod:`searching.fused`)."""

    def __init__(self, model, opt, amp: bool, device: torch.device,
                 amp_cache: bool = True) -> None:
        self.model, self.opt, self.amp, self.amp_cache = model, opt, amp, amp_cache
        self.total_loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)

    def reset(self) -> None:
        self.total_loss.zero_()
        self.correct.zero_()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # autocast's cast cache cannot live across a graph capture: off when graphed
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp,
                            cache_enabled=self.amp_cache):
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        n = len(y)
        self.total_loss += loss.detach() * n
        self.correct += (logits.argmax(1) == y).sum()


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_weight = name == "weight" and isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))
            (decay if is_weight else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


class CNNProxyEvaluator(Evaluator):
    """Trains candidate CNN cells on a proxy dataset held on the training device."""

    metric = "accuracy"
    higher_is_better = True
    curve_metric = "val_acc"

    def __init__(self, data: ProxyData, spec: NetworkSpec, config: CNNProxyTrainConfig) -> None:
        self.data = data
        self.spec = spec
        self.config = config
        self._batches = None  # built lazily on the worker's device, not pickled

    def describe(self) -> Dict[str, Any]:
        cfg = asdict(self.config)
        for name in CNNProxyTrainConfig.RUNTIME:
            cfg.pop(name)
        d = self.data
        return {"spec": self.spec.to_dict(), "train": cfg,
                "proxy data": content_fingerprint(d.train_x, d.train_y, d.val_x, d.val_y)}

    def _device_data(self, device: torch.device):
        if self._batches is None or self._batches[0].x.device != device:
            mean, std = self.data.stats()
            cl = self.config.use_channels_last(device)
            self._batches = (
                DeviceBatches(self.data.train_x, self.data.train_y, mean, std, device, cl),
                DeviceBatches(self.data.val_x, self.data.val_y, mean, std, device, cl))
        return self._batches

    def build(self, graph: CellGraph) -> torch.nn.Module:
        return build_network(graph, self.spec)

    def evaluate(self, graph: CellGraph, seed: int) -> Result:
        # cudnn.benchmark is process-global: this candidate's setting, restored afterwards
        with cudnn_benchmark(self.config.cudnn_benchmark):
            return self._evaluate(graph, seed)

    def _evaluate(self, graph: CellGraph, seed: int) -> Result:
        cfg = self.config
        start = time.perf_counter()
        device = resolve_device(cfg.device)
        torch.manual_seed(seed)
        model = self.build(graph)
        size = (self.spec.in_channels, self.spec.image_size, self.spec.image_size)
        macs, params = count_macs(model, size), count_params(model)
        cuda = device.type == "cuda"
        layout_ok = cuda or cpu_channels_last_ok(model)
        use_cl = cfg.use_channels_last(device) and layout_ok
        fmt = torch.channels_last if use_cl else torch.contiguous_format
        model = model.to(device, memory_format=fmt)
        amp = cuda and cfg.cuda_bf16
        train, val = self._device_data(device)
        opt = torch.optim.Adam(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
        gen = torch.Generator().manual_seed(seed)
        # BN recalibration draws its batches from its own stream: training order is unchanged.
        recal_gen = torch.Generator().manual_seed(seed + 1)
        step = self.make_step(model, opt, amp, device)
        validate = self.validation(step)
        best_acc, best_epoch, epochs, curve = 0.0, 0, 0, []
        for epoch in range(1, cfg.epochs + 1):
            epochs = epoch
            train_loss = self._train_epoch(model, opt, train, gen, amp, fmt, step)
            self._recalibrate(model, train, recal_gen, amp, fmt)
            val_loss, val_acc = validate(model, val, amp, fmt)
            curve.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                          "val_acc": val_acc, "seconds": time.perf_counter() - start})
            self.report_epoch(curve[-1])
            if not math.isfinite(val_loss):
                raise Diverged(f"validation loss is {val_loss} at epoch {epoch}")
            if val_acc > best_acc:
                best_acc, best_epoch = val_acc, epoch
            if stop_reason(cfg, epoch, best_epoch, best_acc, train_loss, val_loss):
                break
        return Result(status="ok", metrics={"accuracy": best_acc}, macs=macs, params=params,
                      seconds=time.perf_counter() - start, epochs=epochs, curve=curve)

    def make_step(self, model, opt, amp: bool, device: torch.device):
        """The training step of one candidate (a hook: :mod:`searching.fused` replays it as a
        CUDA graph). It accumulates the epoch's ``total_loss`` and ``correct`` in place."""
        return TrainStep(model, opt, amp, device)

    def validation(self, step):
        """The validation function for a candidate trained with ``step`` (a hook, as
        :meth:`make_step`)."""
        return self._validate

    def _train_epoch(self, model, opt, data: DeviceBatches, gen, amp: bool, fmt,
                     step=None) -> float:
        """One epoch of ``step`` (:meth:`make_step`'s; a new one when None)."""
        cfg = self.config
        if step is None:
            step = self.make_step(model, opt, amp, data.y.device)
        sums = step
        model.train()
        sums.reset()
        seen, check_at = 0, 0
        for x, y in data.batches(cfg.batch_size, gen):
            x = x.contiguous(memory_format=fmt)  # no-op unless the layout was unsafe
            step(x, y)
            seen += len(y)
            if seen >= check_at:  # reading `correct` is a host sync on CUDA: only when needed
                count = int(sums.correct.item())
                if count > cfg.train_acc_stop * seen:
                    break
                check_at = next_accuracy_check(seen, count, cfg.train_acc_stop)
        mean_loss = (sums.total_loss / max(seen, 1)).item()
        if not math.isfinite(mean_loss):
            raise Diverged(f"training loss is {mean_loss}")
        return mean_loss

    def _recalibrate(self, model, data: DeviceBatches, gen, amp: bool, fmt) -> int:
        cfg = self.config
        xs = (x.contiguous(memory_format=fmt) for x, _ in data.batches(cfg.batch_size, gen))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            return recalibrate_bn(model, xs, cfg.bn_recal_batches)

    @torch.no_grad()
    def _validate(self, model, data: DeviceBatches, amp: bool, fmt):
        model.eval()
        total_loss, correct = 0.0, 0
        for x, y in data.batches(self.config.val_batch_size):
            x = x.contiguous(memory_format=fmt)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                logits = model(x).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
        n = len(data)
        return total_loss / n, correct / n


def proxy_spec_from_args(args: Any, num_classes: int, image_size: int = 32,
                         in_channels: Optional[int] = 3) -> NetworkSpec:
    """The proxy skeleton of the paper from the CLI flags."""
    return NetworkSpec(scale=args.scale, pool=args.pool, replicate=args.replicate,
                       width=args.width, channel_scale=args.channel_scale,
                       activation=args.activation, num_classes=num_classes,
                       image_size=image_size, in_channels=in_channels)
