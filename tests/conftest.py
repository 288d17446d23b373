"""Shared fixtures: tiny synthetic datasets in the real formats, and the shared real data."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_CIFAR = SHARED_DATA / "cifar10-subset"
SHARED_PTB = SHARED_DATA / "penn_proxy"


def write_cifar10(root: Path, per_batch: int = 60, test: int = 60, seed: int = 0) -> Path:
    """A tiny CIFAR-10 in the official python layout; class c images are brighter in channel c%3."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int, name: str) -> dict:
        labels = rng.integers(0, 10, n)
        data = rng.integers(0, 120, (n, 3, 32, 32), dtype=np.uint8)
        for k, c in enumerate(labels):
            data[k, c % 3] += np.uint8(60 + 10 * (c // 3))
        return {"batch_label": name, "labels": labels.tolist(),
                "data": data.reshape(n, -1), "filenames": [f"{name}_{k}.png" for k in range(n)]}

    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(per_batch, f"data_batch_{i}"), f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(test, "test_batch"), f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{c}" for c in range(10)],
                     "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    return root


def write_chain_corpus(root: Path, lines: int, eval_lines: int, vocab: int, follow: float,
                       pad: bool = False, seed: int = 0) -> Path:
    """A tiny PTB-format corpus a small LM can learn: word w{i+1} follows w{i} with
    probability ``follow``, otherwise a random word; ``pad`` adds stray spaces at both ends
    of every line, which the reader must ignore."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", lines), ("valid", eval_lines), ("test", eval_lines)):
        out = []
        for _ in range(n):
            w, sent = int(rng.integers(0, vocab)), []
            for _ in range(int(rng.integers(4, 10))):
                sent.append(f"w{w}")
                w = (w + 1) % vocab if rng.random() < follow else int(rng.integers(0, vocab))
            out.append(f" {' '.join(sent)} " if pad else " ".join(sent))
        (root / f"{split}.txt").write_text("\n".join(out) + "\n")
    return root


@pytest.fixture
def one_thread():
    """Tiny models on two shared cores: one intra-op thread is fastest and steadiest."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    return write_cifar10(tmp_path_factory.mktemp("cifar"))


@pytest.fixture
def shared_cifar() -> Path:
    if not (SHARED_CIFAR / "cifar-10-batches-py" / "data_batch_1").is_file():
        pytest.skip(f"real CIFAR-10 subset not present at {SHARED_CIFAR}")
    return SHARED_CIFAR


def run_script(script: str, *args: str, cwd: Path = REPO, timeout: int = 300,
               check: bool = False) -> subprocess.CompletedProcess:
    """Run a repository script as a user would: ``python <script> <args>``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
