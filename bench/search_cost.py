"""Search cost side by side: hours per search of each method at its paper settings,
measured in one run on the device at hand, and the ratio to AutoShrink.

    python bench/search_cost.py --out search_cost.json [--quick] [--cifar DIR] [--ptb DIR]

(``bash scripts/table_search_cost.sh`` runs it.) Each search is started through its own CLI
with its paper flags, stopped after a measured fraction (candidates x epochs, steps, or one
epoch on N images) and projected to the whole search. Hours exclude the per-epoch evaluations
the searches log but do not need, and data loading. A method whose CLI is missing or fails is
reported as not measured, with the reason.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
#: Paper claims (AutoShrink: 1.5 GPU-hours per search; ENAS 10 h RNN, 10.8 h CNN).
PAPER_HOURS = {("autoshrink", "cnn"): 1.5, ("autoshrink", "rnn"): 1.5,
               ("enas", "rnn"): 10.0, ("enas-micro", "cnn"): 10.8}
PAPER_RATIO = {"rnn": 6.7, "cnn": 7.2}
PTB_TRAIN_WORDS = 929_589  # Mikolov's PTB train split with <eos>
CIFAR_TRAIN = 50_000


@dataclass
class Row:
    method: str
    task: str
    hours: float
    device: str
    measured_fraction: float
    note: str = ""


# ---------------------------------------------------------------------------- projections
def reference_candidates(e0: int, k: int, threshold: int) -> int:
    """Candidate trainings of a shrink search from e0 edges down to ``threshold``: one
    removal per step, min(k, edges) candidates a step (as bench/candidate.py)."""
    return sum(min(k, e) for e in range(e0, threshold, -1))


def project_autoshrink(records: List[Dict[str, Any]], candidates: int, max_epochs: int,
                       data_scale: float = 1.0) -> tuple:
    """(hours, fraction) from journal records (``seconds``, ``epochs``, ``status``)."""
    ok = [r for r in records if r.get("status", "ok") == "ok" and r.get("epochs")]
    if not ok:
        raise ValueError("no finished candidate to project from")
    epochs = sum(int(r["epochs"]) for r in ok)
    per_epoch = sum(float(r["seconds"]) for r in ok) / epochs * data_scale
    total_epochs = candidates * max_epochs
    return total_epochs * per_epoch / 3600.0, epochs / total_epochs


def project_enas_rnn(record: Dict[str, Any], shared: int, controller: int, derive: int,
                     epochs: int = 150, paper_shared: int = 400, paper_controller: int = 2000,
                     paper_derive: int = 100) -> tuple:
    """(hours, fraction) from one ENAS RNN history record measured with ``shared`` shared
    steps, ``controller`` controller steps and ``derive`` derive samples."""
    ctrl_s, der_s = float(record["controller_seconds"]), float(record["derive_seconds"])
    shared_s = float(record["seconds"]) - ctrl_s - der_s
    epoch = (paper_shared * shared_s / shared
             + (paper_controller * ctrl_s / controller if controller else 0.0)
             + paper_derive * der_s / derive)
    fraction = (shared + controller + derive) / (epochs * (paper_shared + paper_controller
                                                           + paper_derive))
    return epochs * epoch / 3600.0, fraction


def project_epoch(record: Dict[str, Any], epochs: int, data_scale: float) -> tuple:
    """(hours, fraction) of a one-shot search from its first epoch's record measured on
    1 / ``data_scale`` of the paper's data; a ``controller_seconds`` field is not scaled."""
    seconds = float(record["seconds"])
    ctrl = float(record.get("controller_seconds") or 0.0)
    epoch = (seconds - ctrl) * data_scale + ctrl
    return epochs * epoch / 3600.0, 1.0 / (epochs * data_scale)


def project_nao_ws(records: List[Dict[str, Any]], train_size: int, seed_arch: int,
                   controller_epochs: int, eval_batch: int,
                   epochs: int = 150, iterations: int = 4, pool: int = 1000,
                   paper_controller_epochs: int = 1000, new_arch: int = 500,
                   paper_eval_batch: int = 500) -> tuple:
    """(hours, fraction) of NAO-WS from a 2-epoch, 1-iteration run on ``train_size`` images
    with a pool of ``seed_arch``: supernet epochs scaled to CIFAR-10's 50,000 images, pool
    evaluations per architecture (one batch each, scaled to 500 images) x pool x
    (iterations + 1), controller training per (epoch x architecture) x 1,000 epochs x pool x
    iterations, generation per new architecture x 500 x iterations (the TF release's sizes)."""
    first = records[0]
    phases = sum(float(first.get(k) or 0.0) for k in
                 ("pool_eval_seconds", "controller_seconds", "generate_seconds"))
    child_epoch = (float(first["seconds"]) - phases) * CIFAR_TRAIN / train_size
    evals = [float(r["pool_eval_seconds"]) for r in records if r.get("pool_eval_seconds")]
    per_arch = (sum(evals) / (len(evals) * seed_arch)) * paper_eval_batch / eval_batch
    ctrl = float(first["controller_seconds"]) / (controller_epochs * seed_arch)
    gen = float(first["generate_seconds"]) / max(int(first.get("new_archs") or 1), 1)
    total = (epochs * child_epoch + (iterations + 1) * pool * per_arch
             + iterations * (paper_controller_epochs * pool * ctrl + new_arch * gen))
    measured = sum(float(r["seconds"]) for r in records)
    return total / 3600.0, measured / total  # the measured share of the projected time


def ratios(rows: List[Row]) -> Dict[str, Dict[str, float]]:
    """Per task: each method's hours over AutoShrink's."""
    out: Dict[str, Dict[str, float]] = {}
    for task in ("cnn", "rnn"):
        base = [r.hours for r in rows if r.task == task and r.method == "autoshrink"]
        if not base or not base[0] > 0:
            continue
        out[task] = {r.method: r.hours / base[0] for r in rows
                     if r.task == task and math.isfinite(r.hours)}
    return out


def format_table(rows: List[Row]) -> str:
    rel = ratios(rows)
    lines = [f"{'method':<14} {'task':<4} {'hours':>10} {'x AutoShrink':>13} {'fraction':>10}"
             f"  {'paper':>6}  device"]
    for r in rows:
        ratio = rel.get(r.task, {}).get(r.method)
        paper = PAPER_HOURS.get((r.method, r.task))
        lines.append(f"{r.method:<14} {r.task:<4} {r.hours:>10.2f} "
                     f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>13} "
                     f"{r.measured_fraction:>10.2e}  {(f'{paper:g}h' if paper else '-'):>6}  "
                     f"{r.device}")
    lines.append(f"paper: ENAS / AutoShrink = {PAPER_RATIO['rnn']}x (RNN), "
                 f"{PAPER_RATIO['cnn']}x (CNN)")
    return "\n".join(lines)


def write_out(path: str, rows: List[Row], skipped: Dict[str, str], quick: bool) -> None:
    sys.path.insert(0, str(REPO))
    from api.runs.atomic_io import atomic_write_json

    atomic_write_json(Path(path), {"rows": [asdict(r) for r in rows], "quick": quick,
                                   "ratios": ratios(rows), "not_measured": skipped,
                                   "paper_ratio": PAPER_RATIO})


# ---------------------------------------------------------------------------- runners
class Runner:
    """Runs the CLIs in a scratch folder with the shared device/thread settings."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        if args.threads:
            self.env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    def run(self, name: str, argv: List[str], timeout: float) -> Path:
        """Run ``python argv`` to its end; its output folder."""
        log = self.work / f"{name}.log"
        with open(log, "w") as f:
            proc = subprocess.run([sys.executable, *argv], cwd=REPO, env=self.env,
                                  stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        if proc.returncode != 0:
            tail = log.read_text()[-300:].strip().splitlines()
            raise RuntimeError(f"exit {proc.returncode}: {tail[-1] if tail else ''}")
        return self.work / name

    def run_until(self, name: str, argv: List[str], journal: Path, lines: int,
                  timeout: float) -> List[Dict[str, Any]]:
        """Run ``python argv`` until ``journal`` holds ``lines`` records, then stop it."""
        log = open(self.work / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline and proc.poll() is None:
                if journal.exists() and journal.read_text().count("\n") >= lines:
                    break
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.close()
        if not journal.exists():
            tail = (self.work / f"{name}.log").read_text()[-300:].strip().splitlines()
            raise RuntimeError(f"no candidate finished: {tail[-1] if tail else 'no output'}")
        return [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]


def _history(folder: Path) -> List[Dict[str, Any]]:
    return [json.loads(x) for x in (folder / "history.jsonl").read_text().splitlines()]


def _device_of(folder: Path, default: str) -> str:
    try:
        return json.loads((folder / "summary.json").read_text())["device"]
    except (OSError, KeyError, ValueError):
        return default


def autoshrink_cnn(r: Runner, q: bool, device: str) -> Row:
    a = r.args
    train, val = (1000, 200) if q else (5000, 1000)
    epochs, n = (1, 1) if q else (2, 2)
    out = r.work / "autoshrink-cnn"
    recs = r.run_until("autoshrink-cnn", [
        "searching/cnn/autoshrink_cnn.py", "--model_root", str(out), "--nodes", "8",
        "--depth", "3", "--width", "1", "--scale", "1", "2", "4", "--pool", "1", "2", "2",
        "--replicate", "1", "1", "1", "--protocol", "v3", "--max_steps", "10",
        "--data", a.cifar, "--proxy_train", str(train), "--proxy_val", str(val),
        "--epochs", str(epochs), "--seed", "0", "--device", a.device, "--quiet",
        "--no_plots"] + (["--threads", str(a.threads)] if a.threads else []),
        out / "candidates.jsonl", n, a.timeout)
    hours, frac = project_autoshrink(recs[:n], reference_candidates(28, 10, 0), 20,
                                     5000 / train)
    return Row("autoshrink", "cnn", hours, device, frac,
               f"{n} candidate(s) x {epochs} epoch(s) on {train}/{val} proxy images, "
               f"x{5000 / train:g} to 5,000, to 235 candidates x 20 epochs (upper bound)")


def autoshrink_rnn(r: Runner, q: bool, device: str) -> Row:
    a = r.args
    epochs, n = (1, 1) if q else (2, 2)
    out = r.work / "autoshrink-rnn"
    recs = r.run_until("autoshrink-rnn", [
        "searching/rnn/train.py", "--save", str(out), "--nodes", "6", "--data", a.ptb,
        "--emb_path", "none", "--emsize", "100", "--nhidlast", "100", "--lr", "20",
        "--clip", "0.25", "--epochs", str(epochs), "--batch_size", "128", "--max_steps", "10",
        "--keep_fraction", "0.25", "--seed", "0", "--device", a.device, "--quiet",
        "--no_plots"] + (["--threads", str(a.threads)] if a.threads else []),
        out / "candidates.jsonl", n, a.timeout)
    hours, frac = project_autoshrink(recs[:n], reference_candidates(15, 10, 4), 10)
    return Row("autoshrink", "rnn", hours, device, frac,
               f"{n} candidate(s) x {epochs} epoch(s) on the PTB proxy, to 95 candidates x "
               "10 epochs (upper bound)")


def enas_rnn(r: Runner, q: bool, device: str) -> Row:
    a = r.args
    s, c, d = (1, 2, 2) if q else (5, 20, 10)
    out = r.run("enas-rnn", [
        "searching/enas/main.py", "--network_type", "rnn", "--dataset", "ptb",
        "--controller_optim", "adam", "--controller_lr", "0.00035", "--shared_optim", "sgd",
        "--shared_lr", "20.0", "--entropy_coeff", "0.0001", "--data", a.ptb, "--save",
        str(r.work / "enas-rnn"), "--max_epoch", "1", "--shared_max_step", str(s),
        "--controller_max_step", str(c), "--derive_num_sample", str(d), "--seed", "0",
        "--device", a.device, "--quiet", "--no_plots"], a.timeout)
    rec = _history(out)[0]
    hours, frac = project_enas_rnn(rec, s, c, d)
    ctrl, der = rec["controller_seconds"], rec["derive_seconds"]
    return Row("enas", "rnn", hours, _device_of(out, device), frac,
               f"1 epoch with {s} shared / {c} controller steps / {d} derive samples at "
               f"the search's default sizes ({(rec['seconds'] - ctrl - der) / s:.2f} / {ctrl / c:.2f} / "
               f"{der / d:.2f} s each), to 150 x (400 / 2000 / 100)")


def _image_oneshot(r: Runner, name: str, method: str, argv: List[str], epochs: int,
                   q: bool, device: str, what: str) -> Row:
    a = r.args
    n = 480 if q else 4800
    out = r.run(name, [*argv, "--data", a.cifar, "--save", str(r.work / name),
                       "--train_size", str(n), "--seed", "0", "--device", a.device,
                       "--quiet", "--no_plots"], a.timeout)
    rec = _history(out)[0]
    hours, frac = project_epoch(rec, epochs, CIFAR_TRAIN / n)
    split = " (controller seconds not scaled)" if rec.get("controller_seconds") else ""
    return Row(method, "cnn", hours, _device_of(out, device), frac,
               f"1 epoch on {n} images{split}, x{CIFAR_TRAIN / n:g} to 50,000, x{epochs} "
               f"epochs ({what})")


def enas_micro(r: Runner, q: bool, device: str) -> Row:
    """ENAS micro through the ENAS CNN search's own cost probe (bench/enas_cnn_cost.py:
    child and controller steps of the search's code at the official sizes, warm-up excluded,
    projected to 150 epochs of 282 child steps and the controller's steps)."""
    a = r.args
    child, ctrl = (1, 1) if q else (5, 2)
    out = r.work / "enas-micro.json"
    r.run("enas-micro", ["bench/enas_cnn_cost.py", "--cnn_space", "micro",
                         "--child_steps", str(child), "--controller_steps", str(ctrl),
                         "--device", a.device, "--out", str(out)], a.timeout)
    m = json.loads(out.read_text())
    return Row("enas-micro", "cnn", float(m["hours"]), m.get("device", device),
               float(m["measured_fraction"]),
               f"{child} child step(s) ({m['seconds_per_child_step']:.2f} s) and {ctrl} "
               f"controller step(s) ({m['seconds_per_controller_step']:.2f} s) at the official "
               f"sizes, to {m['epochs']} x ({m['child_steps_per_epoch']} + "
               f"{m['controller_steps_per_epoch']}) (bench/enas_cnn_cost.py)")


def darts_cnn(r: Runner, q: bool, device: str) -> Row:
    return _image_oneshot(r, "darts-v1", "darts-v1", [
        "searching/darts/train_search.py", "--space", "darts", "--dataset", "cifar10",
        "--epochs", "1"], 50, q, device, "DARTS-V1 darts space, 50 epochs")


def gdas_cnn(r: Runner, q: bool, device: str) -> Row:
    return _image_oneshot(r, "gdas", "gdas", [
        "searching/gdas/search.py", "--space", "darts", "--dataset", "cifar10",
        "--epochs", "1"], 250, q, device, "GDAS NASNet space, 250 epochs")


def darts_rnn(r: Runner, q: bool, device: str) -> Row:
    a = r.args
    out = r.run("darts-v1-rnn", ["searching/darts/train_search_rnn.py", "--data", a.ptb,
                                 "--save", str(r.work / "darts-v1-rnn"), "--epochs", "1",
                                 "--seed", "0", "--device", a.device, "--quiet",
                                 "--no_plots"], a.timeout)
    words = sum(len(line.split()) + 1 for line in open(Path(a.ptb) / "train.txt"))
    hours, frac = project_epoch(_history(out)[0], 50, PTB_TRAIN_WORDS / words)
    return Row("darts-v1", "rnn", hours, _device_of(out, device), frac,
               f"1 epoch on the PTB proxy ({words} words), x{PTB_TRAIN_WORDS / words:.2f} to "
               "PTB, x50 epochs")


def nao_ws(r: Runner, q: bool, device: str) -> Row:
    """NAO-WS (searching/nao/train_search.py, the TF release's sizes) from 2 supernet epochs
    and one pool round on a small pool, each phase timed and projected."""
    a = r.args
    n, seed_arch, new_arch, ctrl_epochs = (500, 10, 5, 5) if q else (5000, 40, 20, 20)
    out = r.run("nao-ws", [
        "searching/nao/train_search.py", "--dataset", "cifar10", "--data", a.cifar,
        "--save", str(r.work / "nao-ws"), "--epochs", "2", "--iterations", "1",
        "--seed_arch", str(seed_arch), "--new_arch", str(new_arch), "--controller_epochs",
        str(ctrl_epochs), "--train_size", str(n), "--seed", "0", "--device", a.device,
        "--quiet", "--no_plots"], a.timeout)
    recs = _history(out)
    eval_batch = min(500, int(round(n * 0.1)))  # NAO-WS's 45k/5k split
    hours, frac = project_nao_ws(recs, n, seed_arch, ctrl_epochs, eval_batch)
    return Row("nao-ws", "cnn", hours, _device_of(out, device), frac,
               f"2 epochs on {n} images (x{CIFAR_TRAIN / n:g}), pool {seed_arch}, "
               f"{ctrl_epochs} controller epochs, {new_arch} new: to 150 epochs, 5 evaluations "
               "of 1,000 archs, 4 x (1,000 controller epochs on 1,000 archs + 500 new)")


METHODS = {"autoshrink-cnn": autoshrink_cnn, "autoshrink-rnn": autoshrink_rnn,
           "enas-rnn": enas_rnn, "enas-micro": enas_micro, "darts-v1": darts_cnn,
           "gdas": gdas_cnn, "darts-v1-rnn": darts_rnn, "nao-ws": nao_ws}
#: Left out of --quick unless named (keeps QUICK=1 to a few minutes on 2 CPU cores).
NOT_QUICK = ("darts-v1-rnn",)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="search_cost.json", help="the JSON table")
    p.add_argument("--quick", action="store_true",
                   help="smallest measured fractions (a few minutes on 2 CPU cores)")
    p.add_argument("--cifar", default=str(REPO.parent / "shared/data/cifar10-subset"))
    p.add_argument("--ptb", default=str(REPO.parent / "shared/data/penn_proxy"))
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads of every search (0: torch's default)")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated subset of {', '.join(METHODS)} (default: all; "
                        f"with --quick all but {', '.join(NOT_QUICK)})")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per method (default 300 quick, 3600 otherwise)")
    a = p.parse_args(argv)
    a.timeout = a.timeout or (300.0 if a.quick else 3600.0)
    a.cifar, a.ptb = os.path.abspath(a.cifar), os.path.abspath(a.ptb)
    for name, folder, probe in (("CIFAR", a.cifar, "cifar-10-batches-py"),
                                ("PTB", a.ptb, "train.txt")):
        if not (Path(folder) / probe).exists():
            print(f"error: {name} data not found at {folder} (set {name}=DIR)", file=sys.stderr)
            return 2
    sys.path.insert(0, str(REPO))
    from api.train.distributed import resolve_device
    from api.machine import device_name

    device = device_name(resolve_device(a.device))
    if a.methods is None:
        a.methods = ",".join(m for m in METHODS if not (a.quick and m in NOT_QUICK))
    chosen = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    rows: List[Row] = []
    skipped: Dict[str, str] = {}
    print(f"search cost on {device}{' (QUICK: smallest fractions)' if a.quick else ''}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="search-cost-") as tmp:
        runner = Runner(a, Path(tmp))
        for name in chosen:
            t0 = time.perf_counter()
            try:
                row = METHODS[name](runner, a.quick, device)
            except (RuntimeError, ValueError, KeyError, OSError,
                    subprocess.TimeoutExpired) as exc:
                skipped[name] = f"{type(exc).__name__}: {exc}"
                print(f"  {name}: not measured ({skipped[name]})", flush=True)
                continue
            rows.append(row)
            print(f"  {name}: {row.hours:.2f} h per search (measured {row.measured_fraction:.2e}"
                  f" of it in {time.perf_counter() - t0:.0f} s; {row.note})", flush=True)
            write_out(a.out, rows, skipped, a.quick)
    write_out(a.out, rows, skipped, a.quick)
    print(format_table(rows))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
