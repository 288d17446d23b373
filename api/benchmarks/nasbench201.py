"""NAS-Bench-201 as a table: every cell's accuracies as numpy arrays indexed by API index.

A tabular search queries thousands of cells per second and the table script runs hundreds of
searches in one process, so a query is an array look-up and a file is read once per process
(:func:`load_table` caches it). Sources (``--benchmark_file``): the shared gzip CSV (or a plain
CSV in its layout), or the official ``.pth`` / NATS-Bench files through their packages when
installed (untested here). A search sees :data:`SIGNAL_COLUMNS`; a found cell is reported by
:data:`REPORTED_COLUMNS`.

See docs/nasbench201.md.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import zlib
from typing import Dict, List, Optional, Tuple

import numpy as np

from api.errors import UserError
from api.spaces.nasbench201.cell import NUM_ARCHS, all_cells

DATASETS = ("cifar10", "cifar100", "imagenet16")
#: What a search queries: the separate 12-epoch schedule's validation accuracy (CIFAR-10:
#: trained on 25k train images, validated on the other 25k; CIFAR-100 / ImageNet16-120: the
#: validation half of the test set).
SIGNAL_COLUMNS = {"cifar10": "nb201_cifar10valid_valid_12ep",
                  "cifar100": "nb201_cifar100_valid_12ep",
                  "imagenet16": "nb201_imagenet16_valid_12ep"}
#: What a found cell is reported by: the 200-epoch test accuracy (CIFAR-10: trained on all 50k,
#: tested on the 10k test set, the usual NB201 table figure; the others: the test half).
REPORTED_COLUMNS = {"cifar10": "nats_cifar10_test_200ep",
                    "cifar100": "nb201_cifar100_test_200ep",
                    "imagenet16": "nb201_imagenet16_test_200ep"}
#: The one-shot trainer's name for the reported columns (searching/oneshot/trainer.py).
BENCHMARK_COLUMNS = REPORTED_COLUMNS
_TEXT_COLUMNS = ("arch", "nats_unique_str")

_CACHE: Dict[Tuple, "NB201Table"] = {}
_ARCH_STRINGS: List[str] = []


def arch_strings() -> List[str]:
    """Every cell's benchmark string, in API index order (computed once)."""
    if not _ARCH_STRINGS:
        _ARCH_STRINGS.extend(c.to_string() for c in all_cells())
    return _ARCH_STRINGS


class NB201Table:
    """All 15,625 cells: ``arch`` strings and numeric columns, row ``i`` = API index ``i``."""

    def __init__(self, path: str, columns: Dict[str, np.ndarray], fingerprint: str) -> None:
        self.path = path
        self.columns = columns
        #: what identifies the data (the file's SHA-256, or the official API's path)
        self.fingerprint = fingerprint
        self._index = {s: i for i, s in enumerate(arch_strings())}

    def column(self, name: str, what: str = "") -> np.ndarray:
        if name not in self.columns:
            why = f" ({what})" if what else ""
            raise UserError(f"--benchmark_file {self.path} has no column {name}{why}")
        return self.columns[name]

    def signal(self, dataset: str) -> np.ndarray:
        """The 12-epoch validation accuracy of every cell on ``dataset``: the search signal."""
        return self.column(_column(SIGNAL_COLUMNS, dataset), f"the {dataset} search signal")

    def reported(self, dataset: str) -> np.ndarray:
        """The 200-epoch test accuracy of every cell on ``dataset``: the reported figure."""
        return self.column(_column(REPORTED_COLUMNS, dataset), f"the {dataset} test accuracy")

    def index(self, arch: str) -> Optional[int]:
        """API index of a benchmark string (None when it is not a cell's canonical string)."""
        return self._index.get(arch)


def _column(table: Dict[str, str], dataset: str) -> str:
    if dataset not in table:
        raise UserError(f"unknown NAS-Bench-201 dataset {dataset!r} (datasets: "
                        f"{', '.join(DATASETS)})")
    return table[dataset]


def load_table(path: str) -> NB201Table:
    """The table in ``path`` (gzip or plain CSV, or an official API file), cached per process
    while the file is unchanged. A missing or damaged file is a :class:`UserError`."""
    path = str(path)
    try:
        st = os.stat(path)
    except OSError:
        raise UserError(f"--benchmark_file {path} not found") from None
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        if _is_official(path):
            _CACHE[key] = _read_official(path)
        else:
            _CACHE[key] = _read_csv(path)
    return _CACHE[key]


def _is_official(path: str) -> bool:
    name = os.path.basename(os.path.normpath(path))
    return name.endswith(".pth") or name.startswith("NATS-")


def _read_csv(path: str) -> NB201Table:
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except (OSError, EOFError, zlib.error, csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"--benchmark_file {path} is not the NAS-Bench-201 table "
                        f"({type(exc).__name__})") from exc
    return _parse_rows(path, rows, hashlib.sha256(raw).hexdigest())


def _parse_rows(path: str, rows: List[List[str]], fingerprint: str) -> NB201Table:
    """Check that ``rows`` are the whole table (header, every cell once, at its API index)."""
    bad = f"--benchmark_file {path} is not the NAS-Bench-201 table"
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    missing = [c for c in ("arch", "index") if c not in header]
    if missing:
        raise UserError(f"{bad} (no column {', '.join(missing)})")
    if len(body) != NUM_ARCHS:
        raise UserError(f"{bad} ({len(body)} rows, expected one per cell: {NUM_ARCHS})")
    width = len(header)
    for n, row in enumerate(body, start=2):
        if len(row) != width:
            raise UserError(f"{bad} (line {n} has {len(row)} fields, the header {width})")
    numeric = [c for c in header if c not in _TEXT_COLUMNS]
    cols = list(zip(*body))
    columns: Dict[str, np.ndarray] = {}
    for name in numeric:
        values = cols[header.index(name)]
        try:
            columns[name] = np.array(values, dtype=np.float64)
        except ValueError:
            raise UserError(f"{bad} (a non-numeric value in column {name})") from None
    index = columns.pop("index")
    order = index.astype(np.int64)
    if not (np.array_equal(order, index)
            and np.array_equal(np.sort(order), np.arange(NUM_ARCHS))):
        raise UserError(f"{bad} (column index is not a permutation of 0..{NUM_ARCHS - 1})")
    strings = arch_strings()
    archs = cols[header.index("arch")]
    for i, arch in zip(order, archs):
        if strings[i] != arch:
            raise UserError(f"{bad} (row of index {i} holds {arch[:80]!r}, expected "
                            f"{strings[i]})")
    ranked = np.empty(NUM_ARCHS, dtype=np.int64)
    ranked[order] = np.arange(NUM_ARCHS)
    return NB201Table(path, {name: v[ranked] for name, v in columns.items()}, fingerprint)


# ---------------------------------------------------------------------- official APIs
#: dataset -> (API dataset name of the signal, API dataset name of the reported figure)
_API_NAMES = {"cifar10": ("cifar10-valid", "cifar10"), "cifar100": ("cifar100", "cifar100"),
              "imagenet16": ("ImageNet16-120", "ImageNet16-120")}


def _official_api(path: str):
    if os.path.basename(os.path.normpath(path)).startswith("NATS-"):
        try:
            from nats_bench import create
        except ImportError:
            raise UserError(f"--benchmark_file {path} is a NATS-Bench file: reading it needs "
                            "the nats_bench package (pip install nats_bench), or pass the "
                            "CSV table") from None
        return create(path, "tss", fast_mode=True, verbose=False)
    try:
        from nas_201_api import NASBench201API
    except ImportError:
        raise UserError(f"--benchmark_file {path} is an official NAS-Bench-201 file: reading "
                        "it needs the nas_201_api package (pip install nas-bench-201), or "
                        "pass the CSV table") from None
    return NASBench201API(path, verbose=False)


def _read_official(path: str) -> NB201Table:
    """The signal and reported columns of every dataset, through the official API (its
    ``get_more_info``: means over seeds, 12- and 200-epoch schedules)."""
    api = _official_api(path)
    strings = arch_strings()
    columns = {c: np.empty(NUM_ARCHS) for c in (*SIGNAL_COLUMNS.values(),
                                                 *REPORTED_COLUMNS.values())}
    for i in range(NUM_ARCHS):
        if api.arch(i) != strings[i]:
            raise UserError(f"--benchmark_file {path}: cell {i} is {api.arch(i)}, expected "
                            f"{strings[i]} (not the NAS-Bench-201 topology space)")
        for dataset, (valid_name, test_name) in _API_NAMES.items():
            valid = api.get_more_info(i, valid_name, hp="12", is_random=False)
            test = api.get_more_info(i, test_name, hp="200", is_random=False)
            columns[SIGNAL_COLUMNS[dataset]][i] = valid["valid-accuracy"]
            columns[REPORTED_COLUMNS[dataset]][i] = test["test-accuracy"]
    return NB201Table(path, columns, os.path.realpath(path))


# ---------------------------------------------------------------------- one-shot look-ups
class Benchmark:
    """The found cell's three reported accuracies, for the weight-sharing searches'
    ``--benchmark_file`` (searching/oneshot/trainer.py): arch string -> {dataset: acc}."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.table = load_table(path)
        missing = [c for c in BENCHMARK_COLUMNS.values() if c not in self.table.columns]
        if missing:
            raise UserError(f"--benchmark_file {path} lacks the columns {missing}")

    def lookup(self, arch: str) -> Optional[Dict[str, float]]:
        i = self.table.index(arch)
        if i is None:
            return None
        return {k: float(self.table.columns[c][i]) for k, c in BENCHMARK_COLUMNS.items()}
