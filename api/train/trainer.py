"""The epoch loop shared by the final trainings (CIFAR-10 and ImageNet).

:class:`Trainer` trains, evaluates, logs and checkpoints; the trainers only build its parts
(model, optimizer, per-step scheduler, loss, batch sources). After every epoch ``last.pt``, the
only checkpoint, holds everything ``fit(resume=True)`` needs; a resume first drops any
``metrics.jsonl`` record logged after it. Nothing is selected on the evaluation split. Under
torchrun the model is wrapped in DDP, only rank 0 writes files, evaluation shards are summed
over ranks, and checkpoints record each rank's parameter digest (they must agree).

See docs/operations.md.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn
from api.progress import progress, say

from api.train.checkpoint import (LAST, capture_rng, last_checkpoint, load_checkpoint, restore_rng,
                            save_checkpoint)
from api.train.distributed import DistEnv, all_gather_objects, all_reduce_sum, barrier
from api.train.ema import ModelEma
from api.errors import UserError
from api.runs.run_folder import Projection, announce, counted, on_interrupt
from api.runs.run_folder import add_run_flags as common_run_flags
from api.train.metrics import MetricsLog, topk_correct

Batch = Tuple[torch.Tensor, torch.Tensor]


class LoaderSource:
    """Training batches from a DataLoader whose sampler reshuffles by epoch (DistributedSampler)."""

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def batches(self, epoch: int) -> Iterator[Batch]:
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        return iter(self.loader)


class DeviceSource:
    """Training batches of a device-resident split, shuffled and augmented on the device.

    Each epoch's order and augmentation come from generators seeded by (seed, epoch), so a
    resumed run sees exactly the batches the uninterrupted run would have seen.
    """

    def __init__(self, data, batch_size: int, seed: int,
                 augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]]
                 = None) -> None:
        self.data = data  # api.datasets.DeviceBatches
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment

    def __len__(self) -> int:
        return math.ceil(len(self.data) / self.batch_size)

    def batches(self, epoch: int) -> Iterator[Batch]:
        key = self.seed * 1_000_003 + epoch
        order = torch.Generator().manual_seed(key)
        aug = torch.Generator(device=self.data.x.device).manual_seed(key)
        for x, y in self.data.batches(self.batch_size, order):
            yield (self.augment(x, aug) if self.augment else x), y


@dataclass
class TrainerConfig:
    epochs: int
    output: Path
    amp: bool = False              # bf16 autocast (CUDA only)
    channels_last: bool = False
    grad_clip: float = 0.0         # max grad norm, 0: off
    eval_every: int = 1
    progress: bool = True
    postfix_every: int = 20        # refresh the bar's loss/lr every N steps (a device sync)


def add_run_flags(parser, output_default: str, image_model: bool = True):
    """The "run" flag group every trainer CLI shares (output folder, resume, seed, device,
    progress; for image models also evaluation cadence, bf16 and channels_last); returns the
    group so a CLI can add its own."""
    g = parser.add_argument_group("run")
    g.add_argument("--output", default=output_default, help="checkpoints and logs")
    common_run_flags(g, folder="output")
    if image_model:
        g.add_argument("--eval_every", type=int, default=1, help="validate every N epochs")
        g.add_argument("--no_amp", action="store_true", help="no bf16 autocast on CUDA")
        g.add_argument("--no_channels_last", action="store_true")
    return g


def param_digest(model: nn.Module) -> str:
    """SHA-256 of the model's parameters (names, dtypes, shapes, bytes; buffers excluded:
    DDP ranks keep their own BN statistics). Equal on every rank of a healthy DDP run."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[Batch], device: torch.device,
             amp: bool = False, channels_last: bool = False,
             criterion: Optional[nn.Module] = None) -> Dict[str, float]:
    """Top-1/top-5 (percent) and mean loss over ``batches``, summed over ranks."""
    model.eval()
    criterion = criterion or nn.CrossEntropyLoss()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # top1, top5, loss, n
    for x, y in batches:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(x)
        logits = logits.float()
        totals[:2] += topk_correct(logits, y, (1, 5)).to(totals.dtype)
        totals[2] += criterion(logits, y).double() * len(y)
        totals[3] += len(y)
    top1, top5, loss, n = all_reduce_sum(totals).tolist()
    n = max(n, 1.0)
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n,
            "images": int(n)}


@dataclass
class Trainer:
    """Train ``model`` for ``config.epochs`` epochs; see the module docstring."""

    model: nn.Module                      # unwrapped; DDP-wrapped here when distributed
    optimizer: torch.optim.Optimizer
    scheduler: Any                        # stepped once per optimizer step
    criterion: nn.Module
    train_data: Any                       # len() = steps per epoch, .batches(epoch)
    val_batches: Callable[[], Iterable[Batch]]
    config: TrainerConfig
    env: DistEnv = field(default_factory=DistEnv)
    ema: Optional[ModelEma] = None
    checkpoint_extra: Dict[str, Any] = field(default_factory=dict)  # model spec, args, data
    epoch_hooks: Sequence[Callable[[int], None]] = ()

    def __post_init__(self) -> None:
        self.output = Path(self.config.output)
        self.log = MetricsLog(self.output)
        self.step = 0
        self.ddp = self.model
        if self.env.distributed:
            device_ids = [self.env.device] if self.env.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    # ------------------------------------------------------------------ loop
    def fit(self, resume: bool = False, state: Optional[Dict[str, Any]] = None
            ) -> Dict[str, Any]:
        """Train to ``config.epochs``; with ``resume`` continue from ``last.pt`` (or from
        ``state``, that checkpoint already loaded by the caller)."""
        start = self.restore(state) if resume else 0
        epochs = self.config.epochs
        projection = Projection("epoch", str(self.env.device))
        if self.env.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            self.log.keep_until(start)  # epochs logged after last.pt are trained again
            announce(self.output, f"{counted(epochs, 'epoch')} of "
                                  f"{counted(len(self.train_data), 'step')}",
                     f"last.pt holds epoch {start}; epochs {start + 1} to {epochs} train now "
                     "(the epoch in flight when it stopped starts again)" if resume else None)
        done = {"epoch": start if resume else None}
        on_interrupt(lambda: (
            f"no epoch has finished in {self.output}: run the same command again, without "
            "--resume" if done["epoch"] is None else
            f"last.pt in {self.output} holds epoch {done['epoch']}; --resume trains the "
            "epoch after it again from its start"))
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            for hook in self.epoch_hooks:
                hook(epoch)
            record = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            if (epoch + 1) % self.config.eval_every == 0 or epoch + 1 == epochs:
                record.update(self.validate())
            if self.env.is_main:
                self.log.log(record)
                self._print(record)
                projection.after(time.perf_counter() - t0, 1, epochs - epoch - 1)
            self.save(epoch + 1)
            done["epoch"] = epoch + 1
        return self.finish()

    def train_epoch(self, epoch: int) -> Dict[str, float]:
        cfg, dev = self.config, self.env.device
        self.ddp.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        seen = torch.zeros((), dtype=torch.float64, device=dev)
        bar = progress(total=len(self.train_data), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (cfg.progress and self.env.is_main), leave=False,
                   dynamic_ncols=True)
        start = time.perf_counter()
        for i, (x, y) in enumerate(self.train_data.batches(epoch)):
            x = x.to(dev, non_blocking=True)
            y = y.to(dev, non_blocking=True)
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(dev, cfg.amp):
                logits = self.ddp(x)
            loss = self.criterion(_as_float(logits), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            if self.ema is not None:
                self.ema.update(self.model)
            loss_sum += loss.detach().double() * len(y)
            seen += len(y)
            bar.update()
            if i % cfg.postfix_every == 0 and not bar.disable:
                bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{self.lr:.2e}")
        bar.close()
        seconds = time.perf_counter() - start
        totals = all_reduce_sum(torch.stack([loss_sum, seen]))
        train_loss = (totals[0] / totals[1].clamp(min=1)).item()
        if not math.isfinite(train_loss):
            raise UserError(f"training diverged (loss {train_loss} in epoch {epoch + 1}): lower "
                            f"--lr; the last good checkpoint is {self.output / LAST}")
        return {"train_loss": train_loss, "lr": self.lr, "step": self.step,
                "seconds": seconds, "images_per_s": totals[1].item() / max(seconds, 1e-9)}

    def validate(self) -> Dict[str, float]:
        cfg, dev = self.config, self.env.device
        out = evaluate(self.model, self.val_batches(), dev, cfg.amp, cfg.channels_last)
        record = {"top1": out["top1"], "top5": out["top5"], "val_loss": out["loss"],
                  "val_images": out["images"]}  # summed over ranks: each image once
        if self.ema is not None:
            ema = evaluate(self.ema.module, self.val_batches(), dev, cfg.amp, cfg.channels_last)
            record.update(ema_top1=ema["top1"], ema_top5=ema["top5"], ema_val_loss=ema["loss"])
        return record

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ state
    def state_dict(self, epoch: int) -> Dict[str, Any]:
        return {"model": self.model.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "epoch": epoch, "step": self.step, "world_size": self.env.world_size,
                **self.checkpoint_extra}

    def save(self, epoch: int) -> None:
        # collective: every rank sends its RNG states and parameter digest
        gathered = all_gather_objects((capture_rng(), param_digest(self.model)))
        if self.env.is_main:
            digests = [d for _, d in gathered]
            if len(set(digests)) > 1:
                say(f"warning: after epoch {epoch} the {len(digests)} ranks hold "
                           "different weights (DDP out of sync); last.pt has rank 0's")
            state = dict(self.state_dict(epoch), rng=[r for r, _ in gathered],
                         param_digests=digests)
            save_checkpoint(self.output / LAST, state)
        barrier()

    def restore(self, state: Optional[Dict[str, Any]] = None) -> int:
        """Load ``last.pt`` from the output folder (or take ``state``, already loaded from
        it); returns the number of finished epochs."""
        path = last_checkpoint(self.output)
        if path is None:
            raise UserError(f"--resume: no checkpoint ({LAST}) in {self.output}; "
                            "start without --resume")
        if state is None:
            state = load_checkpoint(path)
        mine, theirs = self.checkpoint_extra.get("model_spec"), state.get("model_spec")
        if mine is not None and theirs is not None and _arch(mine) != _arch(theirs):
            raise UserError(f"{path} was trained with another cell or network; give the "
                            "same graph and network flags, or a new --output")
        try:
            self.model.load_state_dict(state["model"])
            if self.ema is not None and state.get("ema"):
                self.ema.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"{path} does not match this model/optimizer ({first}); use a "
                            "new --output") from exc
        self.step = int(state["step"])
        rng: List[Dict] = state.get("rng") or []
        if len(rng) == self.env.world_size:
            restore_rng(rng[self.env.rank])
        elif rng:  # resumed on another number of ranks: keep ranks apart
            restore_rng(rng[0])
            torch.manual_seed(torch.initial_seed() + self.env.rank)
        epoch = int(state["epoch"])
        if self.env.is_main:
            print(f"resumed from {path} after epoch {epoch} (step {self.step})", flush=True)
        return epoch

    # ------------------------------------------------------------------ report
    def finish(self) -> Dict[str, Any]:
        records = self.log.records() if self.env.is_main else []
        evals = [r for r in records if "top1" in r]
        final = {"epochs": self.config.epochs, "steps": self.step,
                 "train_seconds": sum(r.get("seconds", 0.0) for r in records),
                 "last": records[-1] if records else {}}
        if evals:  # the final epoch's figures (it is always evaluated): nothing is selected
            final["epoch"] = evals[-1]["epoch"]
            final.update({k: evals[-1][k] for k in ("top1", "top5", "ema_top1", "ema_top5",
                                                    "val_images") if k in evals[-1]})
        final.update({k: v for k, v in self.checkpoint_extra.items() if k == "complexity"})
        if self.env.is_main:
            self.log.write_final(final)
        barrier()
        return final

    def _print(self, r: Dict[str, Any]) -> None:
        parts = [f"epoch {r['epoch']}/{self.config.epochs}", f"loss {r['train_loss']:.4f}",
                 f"lr {r['lr']:.3e}"]
        if "top1" in r:
            parts.append(f"top1 {r['top1']:.2f} top5 {r['top5']:.2f}")
        if "ema_top1" in r:
            parts.append(f"ema top1 {r['ema_top1']:.2f}")
        parts.append(f"{r['images_per_s']:.0f} img/s")
        say(" | ".join(parts))


def _as_float(output):
    """Logits in float32; a ``(logits, logits_aux)`` pair (DARTS's networks while training,
    for a criterion such as :class:`api.train.arch_train.AuxiliaryLoss`) element-wise."""
    if isinstance(output, (tuple, list)):
        return type(output)(o.float() if o is not None else None for o in output)
    return output.float()


def _arch(model_spec: Dict[str, Any]) -> Tuple:
    """What must match for weights to load: the cell's mask/ops and the network fields."""
    g, n = model_spec.get("graph", {}), dict(model_spec.get("network", {}))
    for key in ("dropout", "bn_momentum", "bn_eps", "image_size"):  # free to change on resume
        n.pop(key, None)
    return (g.get("mask"), g.get("ops_def"), sorted(n.items()))


def check_output(output: Path, resume: bool) -> None:
    """Refuse to silently overwrite a run (a checkpoint there needs --resume), and fail fast
    on --resume without a checkpoint, before any data is read."""
    if resume and last_checkpoint(output) is None:
        raise UserError(f"--resume: no checkpoint ({LAST}) in {output}; start without --resume")
    if not resume and last_checkpoint(output) is not None:
        raise UserError(f"{output} already holds a run ({LAST}); pass --resume to continue it "
                        "or choose another --output")
