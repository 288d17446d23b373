"""Shared fixtures: tiny synthetic datasets in the real formats, and the shared real data."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

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


def write_cifar100(root: Path, train: int = 300, test: int = 200, seed: int = 0) -> Path:
    """A tiny CIFAR-100 in the official python layout (``cifar-100-python/{train,test,meta}``,
    fine and coarse labels); class c images are brighter in channel c%3."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int, name: str) -> dict:
        labels = np.arange(n) % 100  # every class present, in a shuffled order
        rng.shuffle(labels)
        data = rng.integers(0, 120, (n, 3, 32, 32), dtype=np.uint8)
        for k, c in enumerate(labels):
            data[k, c % 3] += np.uint8(60 + c // 3)
        return {"batch_label": name, "fine_labels": labels.tolist(),
                "coarse_labels": (labels // 5).tolist(), "data": data.reshape(n, -1),
                "filenames": [f"{name}_{k}.png" for k in range(n)]}

    for name, n in (("train", train), ("test", test)):
        with open(folder / name, "wb") as f:
            pickle.dump(batch(n, f"{name} batch"), f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"fine{c}" for c in range(100)],
                     "coarse_label_names": [f"coarse{c}" for c in range(20)]}, f)
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


def run_cli_inprocess(main, argv, capsys, cwd: Optional[Path] = None) -> Tuple[int, str, str]:
    """Run a CLI's ``main(argv)`` in this process as its ``__main__`` block does (through
    :func:`api.errors.run_cli`: a UserError is one ``error:`` line and exit 2); return
    (exit code, stdout, stderr).

    Each script keeps one subprocess smoke test (``run_script``); every other CLI test uses
    this instead, sparing an interpreter start and a torch import (2-4 s) per call. What
    stays checked: the exit code, the exact output, and the warnings a user would see (they
    are added to stderr as Python prints them, not swallowed by pytest). An unexpected
    exception propagates, failing the test with its traceback. The process-global state a CLI
    may change (cwd, sys.argv, os.environ, torch threads and RNG, numpy's global RNG) is
    restored afterwards, so tests do not leak into each other."""
    import warnings

    import torch

    from api.errors import run_cli

    capsys.readouterr()  # only this call's output
    saved_cwd, saved_argv, saved_env = os.getcwd(), sys.argv, dict(os.environ)
    threads, torch_rng = torch.get_num_threads(), torch.get_rng_state()
    np_rng = np.random.get_state()
    code: object = 0
    try:
        os.chdir(cwd or REPO)
        sys.argv = ["cli", *map(str, argv)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()  # Python's defaults, as a user's process has them
            warnings.simplefilter("default")
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                             ResourceWarning):
                warnings.filterwarnings("ignore", category=category)
            try:
                run_cli(main, [str(a) for a in argv])
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        for key in set(os.environ) - set(saved_env):
            del os.environ[key]
        os.environ.update(saved_env)
        torch.set_num_threads(threads)
        torch.set_rng_state(torch_rng)
        np.random.set_state(np_rng)
    out, err = capsys.readouterr()
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                   for w in caught)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): printed, exit status 1
        err, code = err + f"{code}\n", 1
    return code, out, err


def run_script(script: str, *args: str, cwd: Path = REPO, timeout: int = 300,
               check: bool = False) -> subprocess.CompletedProcess:
    """Run a repository script as a user would: ``python <script> <args>``; the one
    subprocess smoke test of each script (see :func:`run_cli_inprocess`)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def kill_9_when(script: str, args, journal: Path, lines: int, timeout: int = 180) -> None:
    """Start ``python <script> <args>``, wait until ``journal`` holds ``lines`` records, then
    kill it with a real SIGKILL (at a point that depends on timing: each search kind keeps one
    such test; the deterministic deaths use :func:`run_search_until_death`)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, str(REPO / script), *map(str, args)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= lines:
                break
            time.sleep(0.02)
        if proc.poll() is not None:
            err.seek(0)
            raise AssertionError("search ended before it could be killed "
                                 f"({proc.returncode}):\n{err.read().decode()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL


class Died(BaseException):
    """Raised instead of ``os._exit`` by :func:`run_search_until_death`: the search died here."""


def folder_files(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def run_search_until_death(main, argv, point: str, root: Path, capsys,
                           monkeypatch) -> Dict[str, bytes]:
    """Run a search CLI in this process until the fault-injection hook of searching/cell_search.py
    (``AUTOSHRINK_TEST_DIE_AT=<point>``, e.g. ``journal:2``) ends it, as kill -9 would at that
    instant; return the files of ``root`` at that instant.

    ``os._exit`` raises :class:`Died` instead of ending pytest. Unlike a killed process, the
    exception runs ``finally`` and ``except`` blocks on its way out, so this checks that they
    changed no file of ``root``: what a resume then sees is exactly what a kill leaves."""
    from api.runs.fault_injection import DIE_AT_ENV

    at_death: Dict[str, bytes] = {}

    def die(status: int) -> None:
        assert status == 137
        at_death.update(folder_files(root))
        raise Died(point)

    with monkeypatch.context() as m:
        m.setenv(DIE_AT_ENV, point)
        m.setattr(os, "_exit", die)
        with pytest.raises(Died):
            run_cli_inprocess(main, argv, capsys)
    assert at_death, f"the search did not reach {point}"
    assert folder_files(root) == at_death, "files changed after the moment of death"
    return at_death


def die_at_every_kind_of_point(main, args, root: Path, capsys, monkeypatch) -> None:
    """Kill a search (``main(args)``, writing ``root``; tiny: 2 candidates a step) by the
    fault-injection hook mid-step, right after a journal append but before its state save,
    between steps and right after a step's plan, each time resuming the last, and check the
    state and journal each death leaves. The caller then resumes to the end and compares
    with the uninterrupted run."""

    def die(point, resuming=True):
        files = run_search_until_death(main, [*args, "--resume"] if resuming else args, point,
                                       root, capsys, monkeypatch)
        return json.loads(files["state.json"]), files["candidates.jsonl"].count(b"\n")

    # saves: start, step 1's plan, its first candidate -> mid-step
    state, lines = die("save:3", resuming=False)
    assert state["step"] == 0 and len(state["plan"]["results"]) == 1 and lines == 1
    # step 1's second candidate, its end, step 2's plan; step 2's first candidate's journal
    # line is written, its state is not
    state, lines = die("journal:2")
    assert state["step"] == 1 and state["plan"]["results"] == {}
    assert lines == len(state["records"]) + 1 == 3
    # that candidate again, step 2's second, step 2's end -> between steps
    state, lines = die("save:3")
    assert state["step"] == 2 and state["plan"] is None and not state["done"] and lines == 4
    state, lines = die("save:1")  # step 3's plan, no candidate yet
    assert state["step"] == 2 and state["plan"]["results"] == {} and lines == 4


def oneshot_history(root: Path, drop=("seconds",)) -> list:
    """A one-shot search's history.jsonl without the fields that legitimately vary (seconds,
    and per-phase timings named ``*_seconds``)."""
    import json

    rows = [json.loads(line) for line in (root / "history.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in drop and not k.endswith("_seconds")}
            for r in rows]


def assert_same_oneshot_search(cut: Path, whole: Path) -> dict:
    """A resumed one-shot search (``cut``) ended exactly as the uninterrupted one (``whole``):
    history, arch-best files, search.log and the supernet weights. Returns both checkpoints."""
    import torch

    assert oneshot_history(cut) == oneshot_history(whole)
    for name in ("arch-best", "arch-best.json", "arch-best.txt", "search.log"):
        assert (cut / name).read_bytes() == (whole / name).read_bytes(), name
    a = torch.load(cut / "checkpoint.pt", weights_only=True)
    b = torch.load(whole / "checkpoint.pt", weights_only=True)
    for key in a["net"]:
        assert torch.equal(a["net"][key], b["net"][key]), key
    return {"cut": a, "whole": b}


def requires_cuda(test):
    """Mark a test (or, as ``pytestmark``, a module) as CUDA-only: ``cuda``, skipped without a GPU."""
    import torch

    skip = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    return pytest.mark.cuda(skip(test))
