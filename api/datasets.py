"""Image datasets for search and evaluation, held as tensors.

Readers return uint8 arrays ``(N, C, H, W)`` plus int64 labels. CIFAR-10/100 come from the
official python batches (``--data`` may hold ``cifar-10-batches-py`` or be that folder); when
absent they are downloaded through torchvision if the network allows. ImageFolder reads a
user's own images (``DIR/train/<class>/*``, ``DIR/val/<class>/*``, any size, grey or colour).
:class:`DeviceBatches` keeps a normalised split on the training device and slices batches
there, so no DataLoader or PIL work happens inside candidate training.
"""
from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from api.runs.atomic_io import atomic_write_bytes
from api.errors import UserError

#: Where every CLI looks for data by default (and the one folder it may download into unasked).
DEFAULT_DATA = "./data"
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
CIFAR_TRAIN_FILES = {"cifar10": [f"data_batch_{i}" for i in range(1, 6)], "cifar100": ["train"]}
CIFAR_TEST_FILES = {"cifar10": ["test_batch"], "cifar100": ["test"]}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm"}


@dataclass
class ImageSplits:
    """Train and validation images as uint8 (N, C, H, W) arrays with integer labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    classes: List[str]
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _find_cifar_folder(root: Path, name: str) -> Optional[Path]:
    folder = CIFAR_FOLDERS[name]
    for candidate in (root / folder, root):
        if (candidate / CIFAR_TRAIN_FILES[name][0]).is_file():
            return candidate
    return None


def _read_cifar_batch(path: Path, label_key: str) -> Tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
        data = data.reshape(len(data), 3, 32, 32)
    except FileNotFoundError:
        raise UserError(f"CIFAR batch {path} is missing: re-download the dataset") from None
    except Exception as exc:
        raise UserError(f"CIFAR batch {path} is damaged ({type(exc).__name__}): "
                        "delete the folder and download it again") from exc
    if len(labels) != len(data):
        raise UserError(f"CIFAR batch {path} is damaged ({len(data)} images, "
                        f"{len(labels)} labels): delete the folder and download it again")
    return data, labels


def _download_cifar(root: Path, name: str) -> None:
    try:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        cls(str(root), train=True, download=True)
    except Exception as exc:
        raise UserError(
            f"{name} not found under {root} and the download failed ({type(exc).__name__}): "
            f"put the official '{CIFAR_FOLDERS[name]}' folder there, or pass --data DIR "
            "that holds it") from exc


def is_default_data(root: str) -> bool:
    """Whether ``root`` is the default data folder (``./data``), the one place a run creates
    and downloads into without being asked."""
    return Path(root).resolve() == Path(DEFAULT_DATA).resolve()


def load_cifar(root: str, name: str = "cifar10", download: Optional[bool] = None) -> ImageSplits:
    """CIFAR-10/100 from the official python batches under ``root``. Absent batches are
    downloaded where ``download`` says so, or (None) into the default data folder only: a
    mistyped ``--data`` must not become a new folder with a dataset in it."""
    if name not in CIFAR_FOLDERS:
        raise UserError(f"unknown CIFAR dataset {name!r}")
    base = Path(root)
    folder = _find_cifar_folder(base, name)
    if folder is None:
        if download is None:
            download = is_default_data(root)
        if not download and not base.is_dir():
            raise UserError(f"--data {root}: no such folder (the default is {DEFAULT_DATA}; "
                            f"add --download to fetch {name} into a new folder there)")
        if not download:
            raise UserError(f"{name} not found under {root}: put the official "
                            f"'{CIFAR_FOLDERS[name]}' folder there, pass --data DIR that holds "
                            "it, or add --download to fetch it there")
        _download_cifar(base, name)
        folder = _find_cifar_folder(base, name)
        if folder is None:
            raise UserError(f"{name} download finished but {base / CIFAR_FOLDERS[name]} is incomplete")
    label_key = "labels" if name == "cifar10" else "fine_labels"
    parts = [_read_cifar_batch(folder / f, label_key) for f in CIFAR_TRAIN_FILES[name]]
    test = [_read_cifar_batch(folder / f, label_key) for f in CIFAR_TEST_FILES[name]]
    meta_file = folder / ("batches.meta" if name == "cifar10" else "meta")
    classes = [str(i) for i in range(10 if name == "cifar10" else 100)]
    if meta_file.is_file():
        try:
            with open(meta_file, "rb") as f:
                meta = pickle.load(f, encoding="latin1")
            classes = list(meta.get("label_names") or meta.get("fine_label_names") or classes)
        except Exception as exc:
            raise UserError(f"CIFAR meta file {meta_file} is damaged: download it again") from exc
    return ImageSplits(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
        np.concatenate([t[0] for t in test]), np.concatenate([t[1] for t in test]),
        classes, str(folder))


def _list_images(split_dir: Path, classes: List[str]) -> List[Tuple[Path, int]]:
    items = []
    for label, cls in enumerate(classes):
        for path in sorted((split_dir / cls).iterdir()):
            if path.suffix.lower() in IMAGE_EXTENSIONS:
                items.append((path, label))
    return items


def _read_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except Exception as exc:
        raise UserError(f"cannot read image {path} ({type(exc).__name__}): remove or replace "
                        "it") from exc


def load_imagefolder(root: str, image_size: int = 32) -> ImageSplits:
    """A user's image folder (``train/<class>/*`` and ``val/<class>/*``) resized to a square."""
    base = Path(root)
    train_dir, val_dir = base / "train", base / "val"
    if not train_dir.is_dir() or not val_dir.is_dir():
        raise UserError(f"image folder {root} needs train/<class>/ and val/<class>/ subfolders")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise UserError(f"{train_dir} needs at least two class folders, found {len(classes)}")
    missing = [c for c in classes if not (val_dir / c).is_dir()]
    if missing:
        raise UserError(f"{val_dir} lacks class folders {missing[:3]} that train/ has")
    splits = []
    for split_dir in (train_dir, val_dir):
        items = _list_images(split_dir, classes)
        if not items:
            raise UserError(f"no images found under {split_dir}")
        x = np.stack([_read_image(p, image_size) for p, _ in items])
        y = np.asarray([label for _, label in items], dtype=np.int64)
        splits.append((x, y))
    return ImageSplits(splits[0][0], splits[0][1], splits[1][0], splits[1][1], classes, str(base))


def load_images(dataset: str, root: str, image_size: int = 32,
                download: Optional[bool] = None) -> ImageSplits:
    if dataset in CIFAR_FOLDERS:
        return load_cifar(root, dataset, download=download)
    if dataset == "imagefolder":
        return load_imagefolder(root, image_size)
    raise UserError(f"unknown dataset {dataset!r} (choose cifar10, cifar100 or imagefolder)")


def balanced_indices(labels: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """``total`` indices drawn without replacement, as class-balanced as the data allows.

    Each class gets ``total / classes``; a class with fewer images gives all it has and the
    shortfall is spread over the classes with images to spare.
    """
    classes = np.unique(labels)
    if total > len(labels):
        raise UserError(f"asked for {total} images but the split holds only {len(labels)}: "
                        "lower --proxy_train/--proxy_val")
    available = {c: int((labels == c).sum()) for c in classes}
    quota = {c: 0 for c in classes}
    left = total
    open_classes = list(classes)
    while left > 0:
        share, extra = divmod(left, len(open_classes))
        for rank, c in enumerate(open_classes):
            quota[c] += min(share + (1 if rank < extra else 0), available[c] - quota[c])
        left = total - sum(quota.values())
        open_classes = [c for c in classes if quota[c] < available[c]]
    chosen = [rng.choice(np.nonzero(labels == c)[0], size=quota[c], replace=False)
              for c in classes]
    return np.sort(np.concatenate(chosen))


#: SHA-256 of AutoDL-Projects' NAS-Bench-201 split lists (``configs/nas-benchmark/``), each
#: the sorted indices joined by commas: a split file is recognised as the official one by them.
AUTODL_SPLIT_SHA256 = {
    "b32573c51d975768a11c0d1540e625040790e2287a603c857413bd78ca68eb94":
        "cifar-split.txt train",
    "fe150dfa5a16fd2cab96300e44d12835a5427d45b6aa3dc7f039b0df1539f5ce":
        "cifar-split.txt valid",
    "156797fd0d0b32af68c9a5e76c8b320c65c129ad5abeed3d03d87d7dfd124923":
        "cifar100-test-split.txt xvalid",
}


def index_list_sha256(indices: np.ndarray) -> str:
    """SHA-256 of the sorted indices joined by commas (see :data:`AUTODL_SPLIT_SHA256`)."""
    import hashlib

    text = ",".join(str(int(i)) for i in np.sort(np.asarray(indices)))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def read_autodl_split(path: str, keys: Sequence[str], size: int) -> Dict[str, np.ndarray]:
    """Index lists from a split file in AutoDL's config format (a JSON object whose values
    are ``["int", ["1", "3", ...]]``; a plain list of integers is taken too): per key, the
    sorted indices, each in [0, ``size``) and unique."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            content = json.load(f)
    except FileNotFoundError:
        raise UserError(f"split file {path} not found") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"split file {path} is not AutoDL's JSON split format "
                        f"({type(exc).__name__})") from exc
    if not isinstance(content, dict):
        raise UserError(f"split file {path} is not AutoDL's JSON split format (not an object)")
    out = {}
    for key in keys:
        value = content.get(key)
        if isinstance(value, list) and len(value) == 2 and value[0] == "int" and \
                isinstance(value[1], list):
            value = value[1]
        try:
            if not isinstance(value, list) or not value:
                raise ValueError
            idx = np.asarray([int(v) for v in value], dtype=np.int64)
        except (TypeError, ValueError):
            raise UserError(f"split file {path} has no list of indices under {key!r}") from None
        outside = idx[(idx < 0) | (idx >= size)]
        if len(outside):
            raise UserError(f"split file {path}: {key!r} holds index {int(outside[0])}, outside "
                            f"the {size} images of the split it indexes (another dataset's file?)")
        if len(np.unique(idx)) != len(idx):
            raise UserError(f"split file {path}: {key!r} repeats indices")
        out[key] = np.sort(idx)
    return out


@dataclass
class ProxyData:
    """A proxy dataset: sampled splits plus the normalisation statistics of its train split."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    num_classes: int
    source: str = ""

    def stats(self) -> Tuple[np.ndarray, np.ndarray]:
        x = self.train_x.astype(np.float64) / 255.0
        return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))

    def save(self, path: str) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, train_x=self.train_x, train_y=self.train_y, val_x=self.val_x,
                            val_y=self.val_y, num_classes=self.num_classes, source=self.source)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str) -> "ProxyData":
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["train_x"], z["train_y"], z["val_x"], z["val_y"],
                           int(z["num_classes"]), str(z["source"]))
        except FileNotFoundError:
            raise UserError(f"proxy file {path} not found: make it with "
                            "searching/cnn/make_cifar10_proxy.py") from None
        except Exception as exc:
            raise UserError(f"proxy file {path} is damaged ({type(exc).__name__}): make it "
                            "again with searching/cnn/make_cifar10_proxy.py") from exc


#: Where the proxy's validation images come from: the dataset's held-out split (CIFAR's test
#: batch, an image folder's val/), as the paper's code did, or the training split.
PROXY_VAL_SOURCES = ("test", "train")


def make_proxy(splits: ImageSplits, train_size: int, val_size: int, seed: int,
               val_source: str = "test") -> ProxyData:
    """Seeded, class-balanced proxy drawn without replacement.

    ``val_source="test"`` (the paper's code) draws train images from the train split and
    validation images from the held-out split. ``"train"`` draws both from the train split,
    disjoint, so that the test split stays unseen by the search; the validation images are
    drawn first, then the train images from the rest.
    """
    if train_size < 1 or val_size < 1:
        raise UserError("proxy sizes must be at least 1 (--proxy_train/--proxy_val)")
    if val_source not in PROXY_VAL_SOURCES:
        raise UserError(f"unknown proxy validation source {val_source!r} "
                        f"(choose {' or '.join(PROXY_VAL_SOURCES)})")
    rng = np.random.default_rng(seed)
    if val_source == "test":
        ti = balanced_indices(splits.train_y, train_size, rng)
        vi = balanced_indices(splits.val_y, val_size, rng)
        return ProxyData(splits.train_x[ti], splits.train_y[ti], splits.val_x[vi],
                         splits.val_y[vi], splits.num_classes, splits.source)
    if train_size + val_size > len(splits.train_y):
        raise UserError(f"--proxy_train {train_size} + --proxy_val {val_size} images asked from "
                        f"a train split of {len(splits.train_y)}: lower them or draw the "
                        "validation images from the test split")
    vi = balanced_indices(splits.train_y, val_size, rng)
    rest = np.setdiff1d(np.arange(len(splits.train_y)), vi)
    ti = rest[balanced_indices(splits.train_y[rest], train_size, rng)]
    return ProxyData(splits.train_x[ti], splits.train_y[ti], splits.train_x[vi],
                     splits.train_y[vi], splits.num_classes, splits.source)


class DeviceBatches:
    """A normalised image split resident on the device, sliced into batches there."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 device: torch.device, channels_last: bool = False) -> None:
        xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        m = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.x = (xt.float().div_(255.0) - m) / s
        if channels_last:
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, generator: Optional[torch.Generator] = None
                ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled batches when ``generator`` is given, in order otherwise."""
        n = len(self.y)
        if generator is not None:
            order = torch.randperm(n, generator=generator).to(self.y.device)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                yield self.x[idx], self.y[idx]
        else:
            for start in range(0, n, batch_size):
                yield self.x[start:start + batch_size], self.y[start:start + batch_size]


def add_download_flag(group) -> None:
    """``--download``: fetch CIFAR into ``--data`` when it is not there. Without it a run
    downloads only into the default data folder, so a mistyped path is reported, not filled."""
    group.add_argument("--download", action="store_true",
                       help=f"download CIFAR into --data when absent (without it: only into "
                            f"the default {DEFAULT_DATA})")
