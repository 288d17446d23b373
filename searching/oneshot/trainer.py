"""The one weight-sharing trainer: DARTS, GDAS, ENAS and NAO-WS run on it.

:class:`OneShotSearch` owns what the searches share: the data (``--train_size`` training
images, class-balanced and seeded, halved into a weights half and an architecture half; on
NAS-Bench-201 with CIFAR-100, as AutoDL, every training image for the weights and the test
split's ``xvalid`` half for the architecture; held and augmented on the device), a persistent validation iterator (one architecture batch per
weights batch), the weights' SGD with its per-epoch cosine schedule, atomic epoch and mid-epoch
checkpoints (``--resume`` after kill -9 ends exactly as the uninterrupted run on CPU) and the
outputs (:meth:`OneShotSearch.write_outputs`). Data reach the loop through a feed
(:class:`ImageFeed`; PTB: :class:`searching.oneshot.text.TextOneShotSearch` overrides the data
hooks). A method object (:class:`OneShotMethod`) owns the per-step maths.

Fidelity notes: docs/fidelity/darts.md.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from api.runs.atomic_io import atomic_torch_save, atomic_write_bytes, atomic_write_json, \
    atomic_write_text, write_jsonl
from api.train.augment import random_crop, random_flip
from api.benchmarks.nasbench201 import BENCHMARK_COLUMNS, Benchmark
from api.train.checkpoint import capture_rng, restore_rng
from api.datasets import (AUTODL_SPLIT_SHA256, CIFAR_FOLDERS, DeviceBatches, _list_images,
                          _read_image, balanced_indices, index_list_sha256, load_cifar,
                          read_autodl_split)
from api.errors import UserError
from api.runs.fault_injection import maybe_die
from api.machine import device_name
from api.search.report import png_bytes
from api.spaces import get_space
from api.spaces.arch_io import Arch, save_arch
from api.runs.run_folder import (Projection, announce, counted, on_interrupt,
                                  refuse_changed_settings, write_args)

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.jsonl"
CHECKPOINT_VERSION = 1
#: Fault injection for the resume tests, inert unless set (the same variable as
#: searching/cell_search.py): "<point>:<n>" ends the process with os._exit(137), as kill -9 would,
#: the n-th time the search passes <point>: "epoch" (a checkpoint written) or "step" (a step
#: done, mid-epoch: the epoch's work since the last checkpoint is lost and redone).


# ---------------------------------------------------------------------------- method API
class OneShotMethod:
    """A weight-sharing method over the trainer: the per-step maths.

    ``bind`` receives the supernet, the weights optimizer and the trainer's settings;
    ``epoch_start(epoch) -> dict`` gives per-epoch figures (e.g. GDAS's tau) for the history;
    ``step(net, train_batch, val_batch, epoch, step) -> dict`` gives per-batch figures
    (``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, as floats or 0-dim tensors);
    ``state_dict()`` / ``load_state_dict()`` hold what a checkpoint must keep."""

    name = "method"

    def bind(self, net: nn.Module, w_optimizer: torch.optim.Optimizer,
             config: "OneShotConfig") -> None:
        self.net, self.w_optimizer, self.config = net, w_optimizer, config

    def settings(self) -> Dict[str, Any]:
        """What changes results (compared on --resume)."""
        return {}

    def epoch_start(self, epoch: int) -> Dict[str, Any]:
        return {}

    def step(self, net: nn.Module, train_batch, val_batch, epoch: int, step: int
             ) -> Dict[str, Any]:
        raise NotImplementedError

    def epoch_end(self, net: nn.Module, feed, epoch: int) -> Dict[str, Any]:
        """After the epoch's weight steps, before the architecture is derived: per-epoch
        figures for the history. Phase-based methods work here (ENAS's controller steps,
        NAO-WS's pool evaluation and controller training), drawing validation batches from
        ``feed.val_iter`` so their randomness is checkpointed with the feed."""
        return {}

    def derive(self, net: nn.Module):
        """The architecture the search would return now (the space's value); the supernet's
        own rule by default (DARTS/GDAS argmax), a controller's sample for ENAS/NAO."""
        return net.derive()

    def edge_weights(self, net: nn.Module) -> Dict[str, torch.Tensor]:
        """Architecture parameters per edge for the history and heatmap (none without α)."""
        return net.edge_weights() if hasattr(net, "edge_weights") else {}

    def epoch_lr(self, epoch: int, default: float) -> float:
        """The weights' learning rate of ``epoch``; the trainer's cosine by default (ENAS
        micro overrides it with cosine restarts)."""
        return default

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


# ---------------------------------------------------------------------------- config
@dataclass
class OneShotConfig:
    space: str
    dataset: str = "cifar10"
    data: str = "./data"
    download: bool = False         # fetch CIFAR into --data when absent (runtime)
    epochs: int = 50
    batch_size: int = 64
    seed: int = 0
    train_size: int = 0            # 0: the whole training split
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    crop_padding: int = 4
    flip: bool = True
    supernet: Dict[str, Any] = field(default_factory=dict)  # the space's supernet kwargs
    #: Share of the drawn images in the architecture half (ENAS: 5k of 50k = 0.1); 0.5 is
    #: DARTS's/GDAS's halves (and is then left out of the settings, as before it existed).
    arch_fraction: float = 0.5
    #: NAS-Bench-201 only: AutoDL's split file (``cifar-split.txt`` for CIFAR-10,
    #: ``cifar100-test-split.txt`` for CIFAR-100); its indices go into the data fingerprint.
    split_file: str = ""

    def settings(self) -> Dict[str, Any]:
        out = asdict(self)
        out.pop("data")  # where the data lies does not change results
        out.pop("download")
        out.pop("split_file")  # nor where the split file lies: its content is fingerprinted
        if out["arch_fraction"] == 0.5:
            out.pop("arch_fraction")
        return json.loads(json.dumps(out))


# ---------------------------------------------------------------------------- data
def _load_train_split(dataset: str, root: str, download: bool = False
                      ) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    if dataset in CIFAR_FOLDERS:
        splits = load_cifar(root, dataset, download=download or None)
        return splits.train_x, splits.train_y, list(splits.classes)
    if not Path(root).is_dir():
        raise UserError(f"--data {root} does not exist: pass the folder holding "
                        f"{CIFAR_FOLDERS.get(dataset, 'train/<class>/')}")
    if dataset == "imagefolder":
        train_dir = Path(root) / "train"
        if not train_dir.is_dir():
            raise UserError(f"image folder {root} needs a train/<class>/ subfolder per class")
        classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
        if len(classes) < 2:
            raise UserError(f"{train_dir} needs at least two class folders, found "
                            f"{len(classes)}")
        items = _list_images(train_dir, classes)
        if not items:
            raise UserError(f"no images found under {train_dir}")
        x = np.stack([_read_image(p, 32) for p, _ in items])
        y = np.asarray([label for _, label in items], dtype=np.int64)
        return x, y, classes
    raise UserError(f"unknown dataset {dataset!r} (choose cifar10, cifar100 or imagefolder)")


@dataclass
class SearchData:
    """The two halves of the search data, on the device (``describe``: where they come from,
    in words, when that is not the training split halved)."""

    weights: DeviceBatches
    arch: DeviceBatches
    num_classes: int
    fingerprint: Dict[str, Any]
    describe: str = ""


#: NAS-Bench-201 on CIFAR-100 (AutoDL's ``get_nas_search_loaders``): the weights train on the
#: whole training split, the architecture on ``xvalid``, half of the test split. Without
#: AutoDL's ``cifar100-test-split.txt`` (``--split_file``) that half is a class-balanced draw
#: with this fixed seed, the same for every run (docs/fidelity/nasbench201.md).
XVALID_SEED = 0
#: The split file's lists per dataset: the weights' and the architecture's.
SPLIT_FILE_KEYS = {"cifar10": ("train", "valid"), "cifar100": ("xvalid",)}


def uses_test_xvalid(config: OneShotConfig) -> bool:
    """Whether the architecture half is the test split's ``xvalid`` (NB201 on CIFAR-100)."""
    return config.space == "nas-bench-201" and config.dataset == "cifar100"


def _split_source(path: str, indices: np.ndarray) -> str:
    name = AUTODL_SPLIT_SHA256.get(index_list_sha256(indices))
    return f"AutoDL's {name}" if name else f"{Path(path).name} (not AutoDL's list)"


def _stats(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    xf = x.astype(np.float64) / 255.0
    return xf.mean(axis=(0, 2, 3)), xf.std(axis=(0, 2, 3)) + 1e-8


def _load_test_xvalid_data(config: OneShotConfig, device: torch.device) -> SearchData:
    """NAS-Bench-201 on CIFAR-100: weights on the training split (``--train_size`` of it,
    class-balanced and seeded), architecture on the test split's ``xvalid`` half."""
    splits = load_cifar(config.data, config.dataset, download=config.download or None)
    n_test = len(splits.val_y)
    if config.split_file:
        xvalid = read_autodl_split(config.split_file, SPLIT_FILE_KEYS[config.dataset],
                                   n_test)["xvalid"]
        source = _split_source(config.split_file, xvalid)
    else:
        if n_test < 2:
            raise UserError(f"{splits.source} holds {n_test} test image(s): the architecture "
                            "needs half of the test split")
        xvalid = balanced_indices(splits.val_y, n_test // 2,
                                  np.random.default_rng(XVALID_SEED))
        source = (f"a class-balanced half drawn with seed {XVALID_SEED}, not AutoDL's list: "
                  "pass its cifar100-test-split.txt as --split_file")
    y = splits.train_y
    total = len(y) if config.train_size <= 0 else int(config.train_size)
    if not 1 <= total <= len(y):
        raise UserError(f"--train_size {total}: choose 1 to the {len(y)} training images of "
                        f"{config.data}")
    chosen = balanced_indices(y, total, np.random.default_rng(config.seed)) \
        if total < len(y) else np.arange(len(y))
    wx, wy = splits.train_x[chosen], y[chosen]
    ax, ay = splits.val_x[xvalid], splits.val_y[xvalid]
    mean, std = _stats(wx)
    fingerprint = {"images": int(total), "weights_half": int(total),
                   "arch_half": int(len(xvalid)), "arch_from": "test",
                   "xvalid_sha256": index_list_sha256(xvalid),
                   "classes": len(splits.classes), "label_sum": int(wy.sum() + ay.sum()),
                   "pixel_sum": int(wx.astype(np.int64).sum() + ax.astype(np.int64).sum())}
    describe = (f"weights on {total} training images, architecture on {len(xvalid)} test "
                f"images (xvalid: {source})")
    return SearchData(DeviceBatches(wx, wy, mean, std, device),
                      DeviceBatches(ax, ay, mean, std, device),
                      len(splits.classes), fingerprint, describe)


def load_search_data(config: OneShotConfig, device: torch.device) -> SearchData:
    if config.split_file and (config.space != "nas-bench-201"
                              or config.dataset not in SPLIT_FILE_KEYS):
        raise UserError("--split_file is AutoDL's NAS-Bench-201 split (cifar-split.txt, "
                        "cifar100-test-split.txt): use it with --space nas-bench-201 and "
                        "--dataset cifar10 or cifar100")
    if uses_test_xvalid(config):
        return _load_test_xvalid_data(config, device)
    x, y, classes = _load_train_split(config.dataset, config.data, config.download)
    if config.split_file:
        if config.train_size > 0:
            raise UserError("--train_size and --split_file both choose the training images: "
                            "drop one")
        parts = read_autodl_split(config.split_file, SPLIT_FILE_KEYS[config.dataset], len(y))
        half, rest = parts["train"], parts["valid"]
        if len(np.intersect1d(half, rest)):
            raise UserError(f"split file {config.split_file}: 'train' and 'valid' share "
                            "images")
        both = np.concatenate([half, rest])
        mean, std = _stats(x[both])
        fingerprint = {"images": int(len(both)), "weights_half": int(len(half)),
                       "arch_half": int(len(rest)), "classes": len(classes),
                       "train_sha256": index_list_sha256(half),
                       "valid_sha256": index_list_sha256(rest),
                       "label_sum": int(y[both].sum()),
                       "pixel_sum": int(x[both].astype(np.int64).sum())}
        src = [_split_source(config.split_file, part) for part in (half, rest)]
        describe = (f"weights on {len(half)} training images ({src[0]}), architecture on "
                    f"{len(rest)} ({src[1]})")
        return SearchData(DeviceBatches(x[half], y[half], mean, std, device),
                          DeviceBatches(x[rest], y[rest], mean, std, device),
                          len(classes), fingerprint, describe)
    rng = np.random.default_rng(config.seed)
    total = len(y) if config.train_size <= 0 else int(config.train_size)
    if total < 2:
        raise UserError("--train_size must be at least 2 (one image per half)")
    if total > len(y):
        raise UserError(f"--train_size {total} is more than the {len(y)} training images of "
                        f"{config.data}")
    chosen = balanced_indices(y, total, rng) if total < len(y) else np.arange(len(y))
    x, y = x[chosen], y[chosen]
    n_weights = total // 2 if config.arch_fraction == 0.5 else \
        min(total - 1, max(1, total - int(round(total * config.arch_fraction))))
    half = balanced_indices(y, n_weights, rng)           # weights half
    rest = np.setdiff1d(np.arange(total), half)          # architecture half
    mean, std = _stats(x)
    fingerprint = {"images": int(total), "weights_half": int(len(half)),
                   "arch_half": int(len(rest)), "classes": len(classes),
                   "label_sum": int(y.sum()), "pixel_sum": int(x.astype(np.int64).sum())}
    return SearchData(DeviceBatches(x[half], y[half], mean, std, device),
                      DeviceBatches(x[rest], y[rest], mean, std, device),
                      len(classes), fingerprint)


class PersistentIterator:
    """Endless shuffled batches of one split; a new permutation each pass. Its state (the
    permutation, the position, the generator) is checkpointed, so a resumed search draws the
    same architecture batches (DARTS's ``valid_queue`` iterator kept across steps)."""

    def __init__(self, data: DeviceBatches, batch_size: int, seed: int) -> None:
        self.data, self.batch_size = data, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order: Optional[torch.Tensor] = None
        self.pos = 0

    def next(self) -> Tuple[torch.Tensor, torch.Tensor]:
        n = len(self.data)
        if self.order is None or self.pos >= n:
            self.order, self.pos = torch.randperm(n, generator=self.generator), 0
        idx = self.order[self.pos:self.pos + self.batch_size].to(self.data.y.device)
        self.pos += self.batch_size
        return self.data.x[idx], self.data.y[idx]

    def state_dict(self) -> Dict[str, Any]:
        return {"order": self.order, "pos": self.pos, "generator": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.order, self.pos = state["order"], int(state["pos"])
        self.generator.set_state(state["generator"])


class ImageFeed:
    """The image search's batches: per epoch a permutation of the weights half (one batch
    per step), one architecture batch per step from the persistent validation iterator,
    crop/flip on the device. The trainer talks to its data through this interface (the text
    search has its own, :mod:`searching.oneshot.text`):

    - ``epoch_state(epoch)``: the epoch's own data state (here its permutation), saved in
      mid-epoch checkpoints and handed back on resume;
    - ``done(epoch_state, step)``: whether the epoch is over before ``step`` (consumes no
      randomness);
    - ``batch(epoch_state, step)``: ``(train_batch, val_batch, n_train, n_val)`` (the counts
      weight the history's means);
    - ``steps(epoch_state)``: the epoch's number of steps (progress bar);
    - ``state_dict()``/``load_state_dict()``: generators and iterators, checkpointed;
    - ``epoch_end(net, means)``: per-epoch figures for the history, given the epoch's mean
      step figures (none here).
    """

    def __init__(self, search: "OneShotSearch", data: SearchData) -> None:
        cfg = search.config
        self.search, self.data, self.batch_size = search, data, cfg.batch_size
        self.val_iter = PersistentIterator(data.arch, cfg.batch_size, cfg.seed + 1)
        self.order_gen = torch.Generator().manual_seed(cfg.seed + 2)
        self.aug_gen = torch.Generator(device=search.device).manual_seed(cfg.seed + 3)

    def steps(self, epoch_state) -> int:
        return math.ceil(len(self.data.weights) / self.batch_size)

    def epoch_state(self, epoch: int) -> torch.Tensor:
        return torch.randperm(len(self.data.weights), generator=self.order_gen)

    def done(self, order: torch.Tensor, step: int) -> bool:
        return step >= self.steps(order)

    def batch(self, order: torch.Tensor, step: int):
        bs = self.batch_size
        idx = order[step * bs:(step + 1) * bs].to(self.search.device)
        xw = self.search._augment(self.data.weights.x[idx], self.aug_gen)
        yw = self.data.weights.y[idx]
        xa, ya = self.val_iter.next()
        xa = self.search._augment(xa, self.aug_gen)
        return (xw, yw), (xa, ya), len(yw), len(ya)

    def epoch_end(self, net: nn.Module, means: Dict[str, float]) -> Dict[str, Any]:
        return {}

    def state_dict(self) -> Dict[str, Any]:
        return {"val_iterator": self.val_iter.state_dict(),
                "order_generator": self.order_gen.get_state(),
                "aug_generator": self.aug_gen.get_state().cpu()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.val_iter.load_state_dict(state["val_iterator"])
        self.order_gen.set_state(state["order_generator"])
        self.aug_gen.set_state(state["aug_generator"].to(self.aug_gen.get_state().device))


# ---------------------------------------------------------------------------- search
class OneShotSearch:
    """A weight-sharing search in ``root`` (see the module doc)."""

    def __init__(self, root: str, config: OneShotConfig, method: OneShotMethod,
                 device: torch.device, progress: bool = True, plots: bool = True,
                 benchmark_file: Optional[str] = None, args: Optional[Dict[str, Any]] = None,
                 checkpoint_seconds: float = 600.0) -> None:
        self.root, self.config, self.method, self.device = Path(root), config, method, device
        self.progress, self.plots, self.args = progress, plots, args or {}
        self.space = get_space(config.space)
        self.benchmark_file = benchmark_file
        self._passes: Dict[str, int] = {}
        #: Mid-epoch checkpoints: after a step when this long has passed since the last save
        #: (0: after every step; negative: epoch checkpoints only). They never change results.
        self.checkpoint_seconds = float(checkpoint_seconds)

    # ------------------------------------------------------------------ checks
    @property
    def checkpoint_path(self) -> Path:
        return self.root / CHECKPOINT

    def _read_checkpoint(self) -> Dict[str, Any]:
        path = self.checkpoint_path
        if not path.is_file():
            raise UserError(f"--resume: {self.root} holds no search checkpoint ({CHECKPOINT} "
                            "missing); run without --resume to start a search")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for key in ("version", "space", "method", "settings", "epoch", "net", "history"):
                state[key]  # noqa: B018 - a missing key means a damaged file
        except Exception as exc:
            raise UserError(f"--resume: {path} is damaged ({type(exc).__name__}); start a new "
                            "search in another folder") from exc
        if state["version"] != CHECKPOINT_VERSION:
            raise UserError(f"--resume: {path} has version {state['version']!r}, expected "
                            f"{CHECKPOINT_VERSION}")
        if state["space"] != self.config.space:
            raise UserError(f"--resume: {self.root} holds a search of the {state['space']} "
                            f"space, not {self.config.space}")
        if state["method"] != self.method.name:
            raise UserError(f"--resume: {self.root} holds a {state['method']} search, not "
                            f"{self.method.name}")
        return state

    def _settings(self, data: SearchData) -> Dict[str, Any]:
        return json.loads(json.dumps({**self.config.settings(),
                                      "method": self.method.name,
                                      "method_settings": self.method.settings(),
                                      "data": data.fingerprint}))

    # ------------------------------------------------------------------ data hooks
    # (the text search, searching/oneshot/text.py, overrides these four)
    def load_data(self):
        """The search data, with a ``fingerprint`` (compared on --resume)."""
        return load_search_data(self.config, self.device)

    def build_supernet(self, data) -> nn.Module:
        cfg = self.config
        return self.space.supernet(cfg.dataset if cfg.dataset != "imagefolder" else "cifar10",
                                   num_classes=data.num_classes, **cfg.supernet)

    def make_feed(self, data) -> ImageFeed:
        return ImageFeed(self, data)

    def epoch_lr(self, epoch: int) -> float:
        """The weights' lr of ``epoch``: cosine from ``lr`` to ``lr_min`` over the epochs."""
        cfg = self.config
        return cfg.lr_min + (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs)) / 2

    # ------------------------------------------------------------------ run
    def run(self, resume: bool = False, force: bool = False) -> Arch:
        cfg = self.config
        state = None
        if resume:
            state = self._read_checkpoint()  # before the data is loaded: fail fast
        elif self.checkpoint_path.exists():
            raise UserError(f"{self.root} already holds a search: pass --resume to continue "
                            "it, or choose another output folder")
        benchmark = Benchmark(self.benchmark_file) if self.benchmark_file else None
        if benchmark is not None and cfg.space != "nas-bench-201":
            raise UserError("--benchmark_file looks up NAS-Bench-201 cells: use it with "
                            "--space nas-bench-201")
        data = self.load_data()
        settings = self._settings(data)
        if state is not None and not force:
            refuse_changed_settings(state["settings"], settings, self.root)

        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        net = self.build_supernet(data).to(self.device)
        w_opt = torch.optim.SGD(net.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        self.method.bind(net, w_opt, cfg)
        feed = self.make_feed(data)

        self.root.mkdir(parents=True, exist_ok=True)
        history: List[Dict[str, Any]] = []
        start_epoch, seconds, partial = 0, 0.0, None
        if state is not None:
            net.load_state_dict(state["net"])
            w_opt.load_state_dict(state["w_optimizer"])
            self.method.load_state_dict(state["method_state"])
            feed.load_state_dict(state)
            restore_rng(state["rng"])
            history, start_epoch, seconds = list(state["history"]), int(state["epoch"]), \
                float(state["seconds"])
            partial = state.get("partial")
            self.write_outputs(net, history, seconds, benchmark, final=False)
        else:
            write_args(self.root, self.args)
            atomic_write_text(self.root / "search.log", "")

        saved = {"at": None}
        if state is not None:
            saved["at"] = (start_epoch, partial["step"] if partial else None)

        def said() -> str:
            if saved["at"] is None:
                return (f"no checkpoint was written in {self.root} yet (one follows each epoch "
                        "and each --checkpoint_minutes): run the same command again, without "
                        "--resume")
            epoch_done, step = saved["at"]
            at = f"epoch {epoch_done}" if step is None else \
                f"step {step} of epoch {epoch_done + 1}"
            return (f"the checkpoint in {self.root} holds {at}; --resume continues from there "
                    "(the work after it is done again)")

        on_interrupt(said)

        def save(epochs_done: int, partial_state: Optional[Dict[str, Any]]) -> None:
            atomic_torch_save(self.checkpoint_path, {
                "version": CHECKPOINT_VERSION, "space": cfg.space, "method": self.method.name,
                "settings": settings, "epoch": epochs_done, "partial": partial_state,
                "net": net.state_dict(), "w_optimizer": w_opt.state_dict(),
                "method_state": self.method.state_dict(), **feed.state_dict(),
                "rng": capture_rng(), "history": history, "seconds": seconds})
            saved["at"] = (epochs_done, partial_state["step"] if partial_state else None)

        from api.progress import progress

        steps = feed.steps(None)
        resumed = None
        if state is not None:
            at = (f", step {partial['step']} of epoch {start_epoch + 1} (its steps before are "
                  "kept; the epoch goes on from there)") if partial else ""
            resumed = (f"{start_epoch} of {cfg.epochs} epochs done{at}; "
                       f"{cfg.epochs - start_epoch} epoch(s) to go")
        describe = getattr(data, "describe", "")
        announce(self.root, f"{counted(cfg.epochs, 'epoch')} of {self.method.name} on "
                            f"{cfg.space}, about {counted(steps, 'step')} each "
                            f"(batch {cfg.batch_size})" + (f"; {describe}" if describe else ""),
                 resumed)
        projection = Projection("epoch", str(self.device))
        bar = progress(total=cfg.epochs, initial=start_epoch, desc=f"{self.method.name} epochs",
                   unit="epoch", disable=not self.progress, dynamic_ncols=True)
        last_save = time.perf_counter()
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            lr = self.method.epoch_lr(epoch, self.epoch_lr(epoch))
            for group in w_opt.param_groups:
                group["lr"] = lr
            if partial is not None:  # resumed mid-epoch: the epoch's own state, saved
                extra, order, first = dict(partial["extra"]), partial["order"], partial["step"]
                sums, counts = dict(partial["sums"]), dict(partial["counts"])
                before, partial = float(partial["seconds"]), None
            else:
                extra = self.method.epoch_start(epoch)
                order = feed.epoch_state(epoch)
                first, sums, counts, before = 0, {}, {}, 0.0
            net.train()
            inner = progress(total=feed.steps(order), initial=first,
                         desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step", leave=False,
                         disable=not self.progress, dynamic_ncols=True)
            step = first
            while not feed.done(order, step):
                train_batch, val_batch, n_train, n_val = feed.batch(order, step)
                figures = self.method.step(net, train_batch, val_batch, epoch, step)
                for key, value in figures.items():
                    n = n_train if key.startswith("train") else n_val
                    value = torch.as_tensor(value, dtype=torch.float64).detach().cpu() * n
                    sums[key] = sums.get(key, 0) + value
                    counts[key] = counts.get(key, 0) + n
                inner.update(1)
                step += 1
                if (self.checkpoint_seconds >= 0 and not feed.done(order, step)
                        and time.perf_counter() - last_save >= self.checkpoint_seconds):
                    now = time.perf_counter()
                    save(epoch, {"epoch": epoch, "step": step, "order": order,
                                 "sums": sums, "counts": counts, "extra": extra,
                                 "seconds": before + now - t0})
                    last_save = time.perf_counter()
                    t0 += last_save - now  # the save is not search time
                self._fault_point("step")
            inner.close()
            elapsed = before + time.perf_counter() - t0
            means = {k: float(sums[k] / counts[k]) for k in sorted(sums)}
            t1 = time.perf_counter()
            extra.update(self.method.epoch_end(net, feed, epoch))
            arch = Arch(cfg.space, self.method.derive(net))
            elapsed += time.perf_counter() - t1
            record: Dict[str, Any] = {"epoch": epoch + 1, "arch": arch.text, "lr": lr,
                                      **means, **extra, **feed.epoch_end(net, means),
                                      "edge_weights": {k: v.cpu().tolist() for k, v in
                                                       self.method.edge_weights(net).items()},
                                      "seconds": elapsed}
            seconds += elapsed
            if benchmark is not None:
                record["benchmark"] = benchmark.lookup(arch.text)
            history.append(record)
            projection.after(elapsed, 1, cfg.epochs - epoch - 1)
            save(epoch + 1, None)
            last_save = time.perf_counter()
            self.write_outputs(net, history, seconds, benchmark, final=epoch + 1 == cfg.epochs)
            bar.write(self._log_line(record))
            bar.update(1)
            self._fault_point("epoch")
        bar.close()
        if start_epoch >= cfg.epochs:  # resumed a finished search: outputs are complete
            self.write_outputs(net, history, seconds, benchmark, final=True)
        return Arch(cfg.space, self.space.parse(history[-1]["arch"]))

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.config.crop_padding > 0:
            x = random_crop(x, self.config.crop_padding, generator)
        if self.config.flip:
            x = random_flip(x, generator)
        return x

    def _fault_point(self, name: str) -> None:
        """Die here if DIE_AT_ENV names this pass through point ``name`` (tests only)."""
        maybe_die(self._passes, name)

    # ------------------------------------------------------------------ outputs
    def summary_extra(self, history: List[Dict[str, Any]]) -> Dict[str, Any]:
        """More of summary.json (the text search's perplexities); none for images."""
        return {}

    def _log_line(self, r: Dict[str, Any]) -> str:
        parts = [f"epoch {r['epoch']:03d}/{self.config.epochs}"]
        if "tau" in r:
            parts.append(f"tau={r['tau']:.3f}")
        parts.append(f"lr={r['lr']:.5f}")
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            if key in r:
                parts.append(f"{key}={r[key]:.4f}")
        for key in ("train_ppl", "val_ppl", "eval_ppl"):  # the text search's
            if key in r:
                parts.append(f"{key}={r[key]:.2f}")
        if r.get("benchmark"):
            parts.append("bench(c10/c100/in16)=" + "/".join(
                f"{r['benchmark'][k]:.2f}" for k in BENCHMARK_COLUMNS))
        parts.append(f"arch={r['arch']}")
        return " ".join(parts)

    def write_outputs(self, net, history: List[Dict[str, Any]], seconds: float,
                      benchmark: Optional[Benchmark], final: bool) -> None:
        """Everything in ``root`` from the history (so a resume rewrites the same files):
        ``history.jsonl``, ``search.log``, ``arch-best`` (+ ``.json``/``.txt``: the last
        epoch's derived architecture, the papers' rule), ``summary.json``, plots."""
        cfg = self.config
        write_jsonl(self.root / HISTORY, history)
        atomic_write_text(self.root / "search.log",
                          "".join(self._log_line(r) + "\n" for r in history))
        if not history:
            return
        arch = Arch(cfg.space, self.space.parse(history[-1]["arch"]))
        save_arch(arch, str(self.root / "arch-best"))
        summary: Dict[str, Any] = {
            "method": self.method.name, "space": cfg.space, "seed": cfg.seed,
            "dataset": cfg.dataset, "arch": arch.text, "epochs": cfg.epochs,
            "epochs_done": len(history), "finished": final,
            "search_seconds": round(seconds, 3), "device": device_name(self.device),
            "final_train_acc": history[-1].get("train_acc"),
            "final_val_acc": history[-1].get("val_acc"), **self.summary_extra(history)}
        if benchmark is not None:
            summary["benchmark_file"] = str(benchmark.path)
            summary["benchmark"] = benchmark.lookup(arch.text)
            summary["benchmark_per_epoch"] = [r.get("benchmark") for r in history]
        atomic_write_json(self.root / "summary.json", summary)
        if self.plots:
            write_plots(self.root, history, self.space)


# ---------------------------------------------------------------------------- plots
def _edge_names(space, n: int) -> List[str]:
    """``node<-input`` per edge where the space lists its edges as (to, from), else numbers."""
    edges = list(getattr(space, "edges", ()) or ())
    if len(edges) == n and all(isinstance(e, tuple) and len(e) == 2 for e in edges):
        return [f"edge {k}: {to}<-{frm}" for k, (to, frm) in enumerate(edges)]
    return [f"edge {k}" for k in range(n)]


def write_panels(path: Path, history: List[Dict[str, Any]], panels) -> None:
    """One PNG of per-epoch curves: ``panels`` = [(title, (history keys, ...)), ...]; a key
    absent from every record is left out (curves.png, ENAS's controller.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
    for ax, (title, keys) in zip(np.atleast_1d(axes), panels):
        for key in keys:
            ys = [r.get(key) for r in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, ys, marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write_bytes(path, png_bytes(fig))


def sampled_arch_step(net: nn.Module, w_optimizer: torch.optim.Optimizer, x: torch.Tensor,
                      y: torch.Tensor, arch, aux_weight: float, grad_clip: float
                      ) -> Dict[str, Any]:
    """One weights step of a supernet on one discrete architecture (ENAS's child step,
    NAO-WS's pool-sampled step): cross-entropy, plus ``aux_weight`` x the auxiliary head's
    when the net returns ``(logits, aux)``, gradient-norm clip, SGD step."""
    w_optimizer.zero_grad()
    out = net(x, arch)
    logits, aux = out if isinstance(out, (tuple, list)) else (out, None)
    loss = F.cross_entropy(logits, y)
    total = loss + aux_weight * F.cross_entropy(aux, y) if aux is not None and \
        aux_weight > 0 else loss
    total.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    w_optimizer.step()
    with torch.no_grad():
        return {"train_loss": loss.detach(), "train_acc": (logits.argmax(1) == y).float().mean()}


def write_plots(root: Path, history: List[Dict[str, Any]], space) -> None:
    """curves.png (losses, accuracies, tau), one ``alpha-heatmap-<cell>.png`` (softmax over
    ops per edge at the last epoch) and ``alpha-trajectory-<cell>.png`` (each op's weight per
    edge over the epochs) per cell type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    panels = [("loss", ("train_loss", "val_loss"))]
    if "train_ppl" in history[-1]:  # the text search
        panels.append(("perplexity", ("train_ppl", "val_ppl", "eval_ppl")))
    else:
        panels.append(("accuracy", ("train_acc", "val_acc")))
    if "tau" in history[-1]:
        panels.append(("tau", ("tau",)))
    if "reward" in history[-1]:  # a controller-based method (ENAS): its REINFORCE figures
        panels += [("controller reward", ("reward", "baseline")), ("entropy", ("entropy",))]
    write_panels(root / "curves.png", history, panels)

    ops = list(getattr(space, "ops", ()))
    for cell, weights in history[-1]["edge_weights"].items():
        w = np.asarray(weights)
        labels = ops if len(ops) == w.shape[1] else [str(j) for j in range(w.shape[1])]
        edge_names = _edge_names(space, w.shape[0])
        fig, ax = plt.subplots(figsize=(1.0 + 0.9 * w.shape[1], 1.0 + 0.4 * w.shape[0]))
        im = ax.imshow(w, cmap="viridis", aspect="auto", vmin=0.0)
        ax.set_xticks(range(w.shape[1]))
        ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=7)
        ax.set_yticks(range(w.shape[0]))
        ax.set_yticklabels(edge_names, fontsize=7)
        for e in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(j, e, f"{w[e, j]:.3f}", ha="center", va="center", fontsize=6,
                        color="white" if w[e, j] < w.max() * 0.6 else "black")
        ax.set_title(f"softmax(alpha) {cell}, epoch {history[-1]['epoch']}", fontsize=8)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        atomic_write_bytes(root / f"alpha-heatmap-{cell}.png", png_bytes(fig))

        traj = np.asarray([r["edge_weights"][cell] for r in history])  # (epochs, edges, ops)
        n_edges = traj.shape[1]
        cols = min(4, n_edges)
        rows = math.ceil(n_edges / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.2 * rows), squeeze=False)
        for e in range(rows * cols):
            ax = axes[e // cols][e % cols]
            if e >= n_edges:
                ax.axis("off")
                continue
            for j in range(traj.shape[2]):
                ax.plot(epochs, traj[:, e, j], label=labels[j], lw=1.2)
            ax.set_title(edge_names[e], fontsize=8)
            ax.tick_params(labelsize=6)
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        atomic_write_bytes(root / f"alpha-trajectory-{cell}.png", png_bytes(fig))
