"""Search cost side by side: hours per search of each method at its paper settings,
measured in one run on the device at hand, and the ratio to AutoShrink.

    python bench/search_cost.py --out search_cost.json [--quick] [--cifar DIR] [--ptb DIR]

(``bash scripts/table_search_cost.sh`` runs it.) Each search is started through its own CLI
with its paper flags and stopped after a measured fraction; every method is measured the same
way: its work comes in units (a candidate epoch, a supernet epoch, a shared / controller step,
a derive sample, a pool evaluation), the first unit of each phase is the warm-up (process
start-up, kernel selection, caches), reported in its own column and left out of the rate, and
at least 3 further units are timed; each repeat projects the whole search from one warm unit
per phase, giving the row's median and min-max. Hours exclude the per-epoch evaluations the
searches log but do not need, and data loading. PTB searches (ENAS RNN, DARTS PTB) run on a
PTB-shaped corpus with PTB's 10,000-word vocabulary. A method whose CLI is missing or fails
is reported as not measured, with the reason.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
#: Paper claims (AutoShrink: 1.5 GPU-hours per search; ENAS 10 h RNN, 10.8 h CNN).
PAPER_HOURS = {("autoshrink", "cnn"): 1.5, ("autoshrink", "rnn"): 1.5,
               ("enas", "rnn"): 10.0, ("enas-micro", "cnn"): 10.8}
PAPER_RATIO = {"rnn": 6.7, "cnn": 7.2}
PTB_TRAIN_WORDS = 929_589  # Mikolov's PTB train split with <eos>
PTB_VOCAB = 10_000         # its vocabulary, <eos> included
CIFAR_TRAIN = 50_000
#: Warm units per phase (after the warm-up unit): the repeats behind each row's spread.
REPEATS = 3


@dataclass
class Row:
    method: str
    task: str
    hours: float                 # median over the repeats' projections
    device: str
    measured_fraction: float     # measured seconds (warm-up included) / projected seconds
    note: str = ""
    hours_min: float = math.nan
    hours_max: float = math.nan
    warmup_s: float = math.nan   # one-time: the first units' excess over warm ones
    repeats: int = 0
    load: str = ""               # load averages (1, 5, 15 min) after the measurement


@dataclass
class Phase:
    """One timed phase of a search: seconds of its first (warm-up) unit, of each warm unit
    after it, and how many units the whole search runs. ``first`` None: no separate warm-up
    unit was measured (a phase timed once, e.g. a pool update)."""
    name: str
    first: Optional[float]
    warm: List[float]
    total: float
    #: The warm-up's excess in measured seconds, where the units are rescaled measurements
    #: (a one-time cost does not grow with the data or shrink per step); None: from the units.
    excess: Optional[float] = None

    def warmup(self) -> float:
        """The warm-up unit's excess over a warm one (never negative)."""
        if self.first is None or not self.warm:
            return 0.0
        if self.excess is not None:
            return max(0.0, self.excess)
        return max(0.0, self.first - statistics.median(self.warm))


@dataclass
class Projection:
    hours: float
    hours_min: float
    hours_max: float
    warmup_s: float
    repeats: int
    fraction: float
    per_repeat: List[float] = field(default_factory=list)


# ---------------------------------------------------------------------------- projections
def reference_candidates(e0: int, k: int, threshold: int) -> int:
    """Candidate trainings of a shrink search from e0 edges down to ``threshold``: one
    removal per step, min(k, edges) candidates a step (as bench/candidate.py)."""
    return sum(min(k, e) for e in range(e0, threshold, -1))


def project(phases: Sequence[Phase]) -> Projection:
    """The whole search from its phases, one way for every method: repeat i projects every
    phase from its i-th warm unit (a phase with fewer warm units than the most any phase has
    uses its median), the warm-up units are left out of the rate and summed separately (paid
    once per search), and the row is the median of the repeats with their min and max."""
    if not phases or any(not p.warm for p in phases):
        raise ValueError("every phase needs at least one warm unit to project from")
    repeats = max(len(p.warm) for p in phases)
    per_repeat = []
    for i in range(repeats):
        seconds = sum(p.total * (p.warm[i] if len(p.warm) == repeats
                                 else statistics.median(p.warm)) for p in phases)
        per_repeat.append(seconds / 3600.0)
    measured = sum((p.first or 0.0) + sum(p.warm) for p in phases)
    hours = statistics.median(per_repeat)
    return Projection(hours, min(per_repeat), max(per_repeat),
                      sum(p.warmup() for p in phases), repeats,
                      measured / max(1e-9, hours * 3600.0), per_repeat)


def split_units(units: Sequence[float], total: float, name: str,
                measured: Optional[Sequence[float]] = None) -> Phase:
    """A phase from consecutive units timed in one run: the first is the warm-up.
    ``measured``: the seconds the (rescaled) units came from, for the warm-up's excess."""
    units = [float(u) for u in units]
    if len(units) < 2:
        raise ValueError(f"{name}: {len(units)} unit(s) timed, need a warm-up unit and at "
                         "least one more")
    excess = None
    if measured is not None:
        excess = float(measured[0]) - statistics.median(float(m) for m in measured[1:])
    return Phase(name, units[0], units[1:], float(total), excess)


def epoch_seconds(curve: Sequence[Dict[str, Any]]) -> List[float]:
    """Per-epoch seconds of a candidate's curve, whose ``seconds`` are cumulative."""
    out, before = [], 0.0
    for row in curve:
        out.append(float(row["seconds"]) - before)
        before = float(row["seconds"])
    return out


def autoshrink_phase(curves: Sequence[Dict[str, Any]], candidates: int, max_epochs: int,
                     data_scale: float = 1.0) -> Phase:
    """Candidate epochs in journal order (finished candidates' curves, epoch seconds scaled by
    ``data_scale``), to ``candidates`` x ``max_epochs`` (no early stops: an upper bound)."""
    measured = [s for c in curves if c.get("status", "ok") == "ok"
                for s in epoch_seconds(c.get("curve") or [])]
    return split_units([s * data_scale for s in measured], candidates * max_epochs,
                       "candidate epochs", measured)


def enas_rnn_phases(history: Sequence[Dict[str, Any]], shared: int, controller: int,
                    derive: int, epochs: int = 150, paper_shared: int = 400,
                    paper_controller: int = 2000, paper_derive: int = 100) -> List[Phase]:
    """Per-step phases of ENAS RNN from its epoch records, each epoch measured with ``shared``
    shared steps, ``controller`` controller steps and ``derive`` derive samples."""
    sh, ct, de = [], [], []
    for r in history:
        c, d = float(r["controller_seconds"] or 0.0), float(r["derive_seconds"] or 0.0)
        sh.append((float(r["seconds"]) - c - d) / shared)
        ct.append(c / controller)
        de.append(d / derive)
    return [split_units(sh, epochs * paper_shared, "shared step", [x * shared for x in sh]),
            split_units(ct, epochs * paper_controller, "controller step",
                        [x * controller for x in ct]),
            split_units(de, epochs * paper_derive, "derive sample", [x * derive for x in de])]


def epoch_phase(history: Sequence[Dict[str, Any]], epochs: int, data_scale: float) -> Phase:
    """A one-shot search's epochs measured on 1 / ``data_scale`` of the paper's data; a
    ``controller_seconds`` field is not scaled."""
    units = []
    for r in history:
        ctrl = float(r.get("controller_seconds") or 0.0)
        units.append((float(r["seconds"]) - ctrl) * data_scale + ctrl)
    return split_units(units, epochs, "epochs", [float(r["seconds"]) for r in history])


def nao_ws_phases(history: Sequence[Dict[str, Any]], train_size: int, seed_arch: int,
                  controller_epochs: int, eval_batch: int, epochs: int = 150,
                  iterations: int = 4, pool: int = 1000, paper_controller_epochs: int = 1000,
                  new_arch: int = 500, paper_eval_batch: int = 500) -> List[Phase]:
    """NAO-WS's phases from a run of several supernet epochs and one pool round: supernet
    epochs (scaled to 50,000 images), pool evaluations per architecture (scaled to a batch of
    500) x pool x (iterations + 1), controller training per (epoch x architecture) x 1,000
    epochs x pool x iterations, generation per new architecture x 500 x iterations (the TF
    release's sizes). The pool round is timed once: its phases have no warm-up unit."""
    keys = ("pool_eval_seconds", "controller_seconds", "generate_seconds")
    child_s = [float(r["seconds"]) - sum(float(r.get(k) or 0.0) for k in keys)
               for r in history]
    child = [c * CIFAR_TRAIN / train_size for c in child_s]
    evals = [float(r["pool_eval_seconds"]) / seed_arch * paper_eval_batch / eval_batch
             for r in history if r.get("pool_eval_seconds")]
    upd = next(r for r in history if r.get("controller_seconds"))
    ctrl = float(upd["controller_seconds"]) / (controller_epochs * seed_arch)
    gen = float(upd["generate_seconds"]) / max(int(upd.get("new_archs") or 1), 1)
    return [split_units(child, epochs, "supernet epochs", child_s),
            Phase("pool evaluation", None, evals, (iterations + 1) * pool),
            Phase("controller epoch x arch", None, [ctrl],
                  iterations * paper_controller_epochs * pool),
            Phase("new arch", None, [gen], iterations * new_arch)]


def enas_cnn_phases(m: Dict[str, Any]) -> List[Phase]:
    """ENAS CNN from bench/enas_cnn_cost.py's JSON: child steps and rewarded samples."""
    per_epoch = (m["controller_steps_per_epoch"] * m["samples_per_controller_step"]
                 + m["derive_samples_per_epoch"])
    return [Phase("child step", m["child_warmup_seconds"], list(m["child_step_times"]),
                  m["epochs"] * m["child_steps_per_epoch"]),
            Phase("rewarded sample", m["sample_warmup_seconds"], list(m["sample_times"]),
                  m["epochs"] * per_epoch)]


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
    lines = [f"{'method':<14} {'task':<4} {'hours':>9} {'min-max':>17} {'x AutoShrink':>13} "
             f"{'warm-up s':>9} {'fraction':>9}  {'paper':>6}  device"]
    for r in rows:
        ratio = rel.get(r.task, {}).get(r.method)
        paper = PAPER_HOURS.get((r.method, r.task))
        lines.append(f"{r.method:<14} {r.task:<4} {r.hours:>9.2f} "
                     f"{f'{r.hours_min:.2f}-{r.hours_max:.2f}':>17} "
                     f"{(f'{ratio:.2f}x' if ratio is not None else '-'):>13} "
                     f"{r.warmup_s:>9.1f} {r.measured_fraction:>9.2e}  "
                     f"{(f'{paper:g}h' if paper else '-'):>6}  {r.device}")
    lines.append(f"paper: ENAS / AutoShrink = {PAPER_RATIO['rnn']}x (RNN), "
                 f"{PAPER_RATIO['cnn']}x (CNN); hours: median of {REPEATS}+ repeats, warm-up "
                 "excluded (paid once per search)")
    return "\n".join(lines)


def write_out(path: str, rows: List[Row], skipped: Dict[str, str], quick: bool,
              extra: Optional[Dict[str, Any]] = None) -> None:
    sys.path.insert(0, str(REPO))
    from api.runs.atomic_io import atomic_write_json

    atomic_write_json(Path(path), {"rows": [asdict(r) for r in rows], "quick": quick,
                                   "ratios": ratios(rows), "not_measured": skipped,
                                   "paper_ratio": PAPER_RATIO, **(extra or {})})


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def make_row(method: str, task: str, phases: Sequence[Phase], device: str, note: str) -> Row:
    p = project(phases)
    return Row(method, task, p.hours, device, p.fraction, note, p.hours_min, p.hours_max,
               p.warmup_s, p.repeats, load())


def write_ptb_shaped(folder: Path, train_words: int, valid_words: int, seed: int = 0,
                     vocab: int = PTB_VOCAB) -> Path:
    """A corpus of PTB's shape: ``vocab`` - 1 word types plus <eos>, every type in the train
    split, sentences of 20 words; the cost of a language model step depends on the
    vocabulary and the lengths only, not on the text."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    words = [f"w{i}" for i in range(vocab - 1)]

    def write(name: str, n: int, cover: bool) -> None:
        tokens = list(words) if cover else []
        while len(tokens) < n:
            tokens.append(rng.choice(words))
        rng.shuffle(tokens)
        with open(folder / name, "w") as f:
            for i in range(0, len(tokens), 20):
                f.write(" ".join(tokens[i:i + 20]) + "\n")

    write("train.txt", max(train_words, vocab), True)
    write("valid.txt", valid_words, False)
    write("test.txt", valid_words, False)
    return folder


def corpus_words(folder: Path) -> int:
    """Words of train.txt with one <eos> per line, as the corpus reader counts them."""
    return sum(len(line.split()) + 1 for line in open(folder / "train.txt"))


# ---------------------------------------------------------------------------- runners
class Runner:
    """Runs the CLIs in a scratch folder with the shared device/thread settings."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        if args.threads:
            self.env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        self._ptb: Optional[Path] = None

    def ptb_shaped(self) -> Path:
        """The PTB-shaped corpus (made once per run)."""
        if self._ptb is None:
            self._ptb = write_ptb_shaped(self.work / "ptb-shaped", 30_000, 6_000)
        return self._ptb

    def run(self, name: str, argv: List[str], timeout: float) -> Path:
        """Run ``python argv`` to its end, one job at a time through the sweep runner
        (api/runs/sweep.py; its log is ``<name>.log``); its output folder."""
        sys.path.insert(0, str(REPO))
        from api.runs.sweep import Job, run_job

        result = run_job(Job(name, list(argv), str(self.work / name)), self.args.threads,
                         timeout)
        if not result.ok:
            raise RuntimeError(result.error)
        return self.work / name

    def run_until(self, name: str, argv: List[str], journal: Path,
                  enough: Callable[[List[Dict[str, Any]]], bool],
                  timeout: float) -> List[Dict[str, Any]]:
        """Run ``python argv`` until the records of ``journal`` (JSON lines) are ``enough``,
        then stop it; the records."""
        log = open(self.work / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout

        def records() -> List[Dict[str, Any]]:
            if not journal.exists():
                return []
            return [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]

        try:
            while time.time() < deadline and proc.poll() is None:
                try:
                    if enough(records()):
                        break
                except ValueError:  # a line being written
                    pass
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.close()
        if not journal.exists():
            tail = (self.work / f"{name}.log").read_text()[-300:].strip().splitlines()
            raise RuntimeError(f"no candidate finished: {tail[-1] if tail else 'no output'}")
        return records()


def _history(folder: Path) -> List[Dict[str, Any]]:
    return [json.loads(x) for x in (folder / "history.jsonl").read_text().splitlines()]


def _device_of(folder: Path, default: str) -> str:
    try:
        return json.loads((folder / "summary.json").read_text())["device"]
    except (OSError, KeyError, ValueError):
        return default


def _units_of(curves: List[Dict[str, Any]]) -> int:
    return sum(len(c.get("curve") or []) for c in curves if c.get("status", "ok") == "ok")


def _autoshrink(r: Runner, name: str, argv: List[str], out: Path) -> List[Dict[str, Any]]:
    """Candidates' curves once 1 + REPEATS candidate epochs have finished."""
    return r.run_until(name, argv, out / "curves.jsonl",
                       lambda recs: _units_of(recs) >= 1 + REPEATS, r.args.timeout)


def autoshrink_cnn(r: Runner, q: bool, device: str) -> Row:
    a = r.args
    train, val = (500, 100) if q else (2000, 400)
    out = r.work / "autoshrink-cnn"
    curves = _autoshrink(r, "autoshrink-cnn", [
        "searching/cnn/autoshrink_cnn.py", "--model_root", str(out), "--nodes", "8",
        "--depth", "3", "--width", "1", "--scale", "1", "2", "4", "--pool", "1", "2", "2",
        "--replicate", "1", "1", "1", "--protocol", "v3", "--max_steps", "10",
        "--data", a.cifar, "--proxy_train", str(train), "--proxy_val", str(val),
        "--epochs", str(1 + REPEATS), "--seed", "0", "--device", a.device, "--quiet",
        "--no_plots"] + (["--threads", str(a.threads)] if a.threads else []), out)
    phase = autoshrink_phase(curves, reference_candidates(28, 10, 0), 20, 5000 / train)
    return make_row("autoshrink", "cnn", [phase], device,
                    f"{len(phase.warm) + 1} candidate epochs on {train}/{val} proxy images "
                    f"(x{5000 / train:g} to 5,000), to 235 candidates x 20 epochs (upper bound)")


def autoshrink_rnn(r: Runner, q: bool, device: str) -> Row:
    a = r.args
    out = r.work / "autoshrink-rnn"
    curves = _autoshrink(r, "autoshrink-rnn", [
        "searching/rnn/train.py", "--save", str(out), "--nodes", "6", "--data", a.ptb,
        "--emb_path", "none", "--emsize", "100", "--nhidlast", "100", "--lr", "20",
        "--clip", "0.25", "--epochs", str(1 + REPEATS), "--batch_size", "128",
        "--max_steps", "10", "--keep_fraction", "0.25", "--seed", "0", "--device", a.device,
        "--quiet", "--no_plots"] + (["--threads", str(a.threads)] if a.threads else []), out)
    phase = autoshrink_phase(curves, reference_candidates(15, 10, 4), 10)
    return make_row("autoshrink", "rnn", [phase], device,
                    f"{len(phase.warm) + 1} candidate epochs on the PTB proxy, to 95 candidates "
                    "x 10 epochs (upper bound)")


def enas_rnn(r: Runner, q: bool, device: str) -> Row:
    a = r.args
    s, c, d = (1, 1, 1) if q else (1, 3, 2)
    ptb = r.ptb_shaped()
    out = r.run("enas-rnn", [
        "searching/enas/main.py", "--network_type", "rnn", "--dataset", "ptb",
        "--controller_optim", "adam", "--controller_lr", "0.00035", "--shared_optim", "sgd",
        "--shared_lr", "20.0", "--entropy_coeff", "0.0001", "--data", str(ptb), "--save",
        str(r.work / "enas-rnn"), "--max_epoch", str(1 + REPEATS), "--shared_max_step", str(s),
        "--controller_max_step", str(c), "--derive_num_sample", str(d), "--seed", "0",
        "--device", a.device, "--quiet", "--no_plots"], a.timeout)
    phases = enas_rnn_phases(_history(out), s, c, d)
    each = " / ".join(f"{statistics.median(p.warm):.2f}" for p in phases)
    return make_row("enas", "rnn", phases, _device_of(out, device),
                    f"{1 + REPEATS} epochs of {s} shared / {c} controller steps / {d} derive "
                    f"samples at the search's default sizes on a PTB-shaped corpus "
                    f"({PTB_VOCAB:,}-word vocabulary; warm medians {each} s each), to 150 x "
                    "(400 / 2000 / 100)")


def _image_oneshot(r: Runner, name: str, method: str, argv: List[str], epochs: int,
                   n: int, device: str, what: str) -> Row:
    a = r.args
    out = r.run(name, [*argv, "--epochs", str(1 + REPEATS), "--data", a.cifar, "--save",
                       str(r.work / name), "--train_size", str(n), "--seed", "0", "--device",
                       a.device, "--quiet", "--no_plots"], a.timeout)
    phase = epoch_phase(_history(out), epochs, CIFAR_TRAIN / n)
    return make_row(method, "cnn", [phase], _device_of(out, device),
                    f"{1 + REPEATS} epochs on {n} images, x{CIFAR_TRAIN / n:g} to 50,000, "
                    f"x{epochs} epochs ({what})")


def enas_micro(r: Runner, q: bool, device: str) -> Row:
    """ENAS micro through the ENAS CNN search's own cost probe (bench/enas_cnn_cost.py:
    child steps and rewarded controller samples of the search's code at the official sizes,
    each after its warm-up unit, projected to 150 epochs of 282 child steps and the
    controller's samples)."""
    a = r.args
    out = r.work / "enas-micro.json"
    r.run("enas-micro", ["bench/enas_cnn_cost.py", "--cnn_space", "micro",
                         "--child_steps", str(REPEATS), "--controller_samples", str(REPEATS),
                         "--device", a.device, "--out", str(out)], a.timeout)
    m = json.loads(out.read_text())
    phases = enas_cnn_phases(m)
    return make_row("enas-micro", "cnn", phases, m.get("device", device),
                    f"{REPEATS} child steps ({statistics.median(phases[0].warm):.2f} s) and "
                    f"{REPEATS} rewarded samples ({statistics.median(phases[1].warm):.2f} s) "
                    f"at the official sizes, each after a warm-up one, to {m['epochs']} x "
                    f"({m['child_steps_per_epoch']} child steps + "
                    f"{m['controller_steps_per_epoch']} x {m['samples_per_controller_step']} + "
                    f"{m['derive_samples_per_epoch']} samples) (bench/enas_cnn_cost.py)")


def darts_cnn(r: Runner, q: bool, device: str) -> Row:
    return _image_oneshot(r, "darts-v1", "darts-v1", [
        "searching/darts/train_search.py", "--space", "darts", "--dataset", "cifar10"], 50,
        240 if q else 480, device, "DARTS-V1 darts space, 50 epochs")


def gdas_cnn(r: Runner, q: bool, device: str) -> Row:
    return _image_oneshot(r, "gdas", "gdas", [
        "searching/gdas/search.py", "--space", "darts", "--dataset", "cifar10"], 250,
        480 if q else 960, device, "GDAS NASNet space, 250 epochs")


def darts_rnn(r: Runner, q: bool, device: str) -> Row:
    a = r.args
    ptb = r.ptb_shaped()
    out = r.run("darts-v1-rnn", ["searching/darts/train_search_rnn.py", "--data", str(ptb),
                                 "--save", str(r.work / "darts-v1-rnn"), "--epochs",
                                 str(1 + REPEATS), "--seed", "0", "--device", a.device,
                                 "--quiet", "--no_plots"], a.timeout)
    words = corpus_words(ptb)
    phase = epoch_phase(_history(out), 50, PTB_TRAIN_WORDS / words)
    return make_row("darts-v1", "rnn", [phase], _device_of(out, device),
                    f"{1 + REPEATS} epochs on a PTB-shaped corpus ({words:,} words, "
                    f"{PTB_VOCAB:,}-word vocabulary), x{PTB_TRAIN_WORDS / words:.2f} to PTB, "
                    "x50 epochs")


def nao_ws(r: Runner, q: bool, device: str) -> Row:
    """NAO-WS (searching/nao/train_search.py, the TF release's sizes) from 1 + REPEATS
    supernet epochs and one pool round (evaluated twice) on a small pool, each phase timed and
    projected."""
    a = r.args
    n, seed_arch, new_arch, ctrl_epochs = (500, 10, 5, 5) if q else (1000, 20, 10, 10)
    out = r.run("nao-ws", [
        "searching/nao/train_search.py", "--dataset", "cifar10", "--data", a.cifar,
        "--save", str(r.work / "nao-ws"), "--epochs", str(1 + REPEATS), "--iterations", "1",
        "--seed_arch", str(seed_arch), "--new_arch", str(new_arch), "--controller_epochs",
        str(ctrl_epochs), "--train_size", str(n), "--seed", "0", "--device", a.device,
        "--quiet", "--no_plots"], a.timeout)
    eval_batch = min(500, int(round(n * 0.1)))  # NAO-WS's 45k/5k split
    phases = nao_ws_phases(_history(out), n, seed_arch, ctrl_epochs, eval_batch)
    return make_row("nao-ws", "cnn", phases, _device_of(out, device),
                    f"{1 + REPEATS} supernet epochs on {n} images (x{CIFAR_TRAIN / n:g}), pool "
                    f"{seed_arch} evaluated twice, {ctrl_epochs} controller epochs, {new_arch} "
                    "new: to 150 epochs, 5 evaluations of 1,000 archs, 4 x (1,000 controller "
                    "epochs on 1,000 archs + 500 new)")


METHODS = {"autoshrink-cnn": autoshrink_cnn, "autoshrink-rnn": autoshrink_rnn,
           "enas-rnn": enas_rnn, "enas-micro": enas_micro, "darts-v1": darts_cnn,
           "gdas": gdas_cnn, "darts-v1-rnn": darts_rnn, "nao-ws": nao_ws}
#: Left out of --quick unless named (keeps QUICK=1 to a few minutes on 2 CPU cores).
NOT_QUICK = ("darts-v1-rnn",)


def on_ray(a: argparse.Namespace, chosen: List[str]) -> int:
    """Each method's measurement as one Ray task (this script with ``--methods <one>``, run
    through the sweep runner, api/runs/sweep.py), the rows gathered into ``--out``. The
    measurements stay one per task, each alone on its reserved CPUs and GPU."""
    from api.runs.sweep import Job, run_sweep

    root = Path(os.path.splitext(os.path.abspath(a.out))[0] + "_ray")
    jobs = []
    for name in chosen:
        folder = root / name
        argv = ["bench/search_cost.py", "--methods", name, "--out", str(folder / "row.json"),
                "--cifar", a.cifar, "--ptb", a.ptb, "--device", a.device,
                "--threads", str(a.threads), "--timeout", str(a.timeout)]
        jobs.append(Job(name, argv + (["--quick"] if a.quick else []), str(folder),
                        {"RAY_ADDRESS": ""}))
    results = run_sweep(jobs, threads=a.threads or 1, ray=True)
    rows: List[Row] = []
    skipped: Dict[str, str] = {}
    settings: Dict[str, Any] = {}
    for job, result in zip(jobs, results):
        try:
            data = json.loads((Path(job.folder) / "row.json").read_text())
        except (OSError, ValueError):
            skipped[job.name] = result.error or "no result written"
            continue
        rows += [Row(**r) for r in data["rows"]]
        skipped.update(data.get("not_measured", {}))
        settings[job.name] = data.get("setting", {})
    write_out(a.out, rows, skipped, a.quick, {"setting": {"ray": True, "per_method": settings}})
    print(format_table(rows))
    print(f"wrote {a.out}")
    return 0


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
                   help="seconds per method (default 600 quick, 1800 otherwise)")
    p.add_argument("--ray", action="store_true",
                   help="one Ray task per method's measurement (also when RAY_ADDRESS is set; "
                        "a GPU each where the cluster has GPUs); the tasks write next to --out, "
                        "which must be on a file system the cluster shares")
    a = p.parse_args(argv)
    a.timeout = a.timeout or (600.0 if a.quick else 1800.0)
    a.cifar, a.ptb = os.path.abspath(a.cifar), os.path.abspath(a.ptb)
    for name, folder, probe in (("CIFAR", a.cifar, "cifar-10-batches-py"),
                                ("PTB", a.ptb, "train.txt")):
        if not (Path(folder) / probe).exists():
            print(f"error: {name} data not found at {folder} (set {name}=DIR)", file=sys.stderr)
            return 2
    if a.methods is None:
        a.methods = ",".join(m for m in METHODS if not (a.quick and m in NOT_QUICK))
    chosen = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    if a.ray or os.environ.get("RAY_ADDRESS"):
        return on_ray(a, chosen)
    import torch
    from api.train.distributed import resolve_device
    from api.machine import device_name

    device = device_name(resolve_device(a.device))
    rows: List[Row] = []
    skipped: Dict[str, str] = {}
    setting = {"torch": torch.__version__, "threads": a.threads or torch.get_num_threads(),
               "cpus": os.cpu_count(), "load_start": load(), "repeats": REPEATS,
               "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"search cost on {device}{' (QUICK: smallest fractions)' if a.quick else ''}; torch "
          f"{setting['torch']}, {setting['threads']} thread(s); load {setting['load_start']}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="search-cost-") as tmp:
        runner = Runner(a, Path(tmp))
        for name in chosen:
            t0 = time.perf_counter()
            try:
                row = METHODS[name](runner, a.quick, device)
            except (RuntimeError, ValueError, KeyError, OSError, StopIteration,
                    subprocess.TimeoutExpired) as exc:
                skipped[name] = f"{type(exc).__name__}: {exc}"
                print(f"  {name}: not measured ({skipped[name]})", flush=True)
                continue
            rows.append(row)
            print(f"  {name}: {row.hours:.2f} h per search ({row.hours_min:.2f}-"
                  f"{row.hours_max:.2f} over {row.repeats} repeats; warm-up {row.warmup_s:.1f} s;"
                  f" measured {row.measured_fraction:.2e} of it in "
                  f"{time.perf_counter() - t0:.0f} s; load {row.load}; {row.note})", flush=True)
            write_out(a.out, rows, skipped, a.quick, {"setting": setting})
    setting["load_end"] = load()
    write_out(a.out, rows, skipped, a.quick, {"setting": setting})
    print(format_table(rows))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
