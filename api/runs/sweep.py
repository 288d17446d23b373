"""Sweeps: many independent runs, each a CLI writing its own folder, run N at a time on this
machine or one Ray task each on a cluster, and resumable.

A job is a name, the arguments of a Python command (a script of this repository and its flags)
and the folder it writes. The runner starts each job as its own process (its log next to its
folder, ``<folder>.log``), writes an atomic done marker in the folder after exit status 0, and
prints one line per finished job. Run again, a sweep skips the jobs whose marker is there and
reruns the others, with ``--resume`` where the folder holds a checkpoint. A failing job is one
line naming its log; the others go on.

It lives in ``api/runs/`` beside the run-folder rules it relies on (a run is a folder that
``--resume`` continues); it knows no method. Ray goes through
:class:`api.search.executors.RayExecutor`. See docs/operations.md (Sweeps).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from api.errors import UserError
from api.runs.atomic_io import atomic_write_json
from api.runs.fault_injection import maybe_die
from api.search.evaluator import Evaluator, Result, Task

REPO = Path(__file__).resolve().parents[2]
#: The marker a finished job's folder holds (written by the runner after exit status 0).
DONE_FILE = "sweep-done.json"
#: Files whose presence means a job's run can be continued with ``--resume``: the
#: weight-sharing searches' checkpoint, the tabular and cell searches' state.
RESUME_FILES = ("checkpoint.pt", "state.json")
#: Seconds between looks at the running jobs.
POLL_SECONDS = 0.1


@dataclass
class Job:
    """One run of a sweep: ``argv`` follows the Python interpreter (``script.py --flag ...``),
    ``folder`` is where the run writes (its ``--save``), ``env`` is added to the environment.
    Jobs run from the repository root: relative paths in ``argv`` and ``folder`` are relative
    to it."""

    name: str
    argv: List[str]
    folder: str
    env: Dict[str, str] = field(default_factory=dict)
    resume_flag: str = "--resume"
    resume_files: Tuple[str, ...] = RESUME_FILES

    def __post_init__(self) -> None:
        self.folder = str(REPO / self.folder)  # an absolute folder stays as it is

    @property
    def log(self) -> str:
        return str(self.folder).rstrip("/\\") + ".log"

    @property
    def marker(self) -> str:
        return os.path.join(str(self.folder), DONE_FILE)


@dataclass
class JobResult:
    """What became of a job: ``status`` is ``ok``, ``done`` (finished by an earlier run of
    the sweep, not redone) or ``failed`` (``error``: one line)."""

    name: str
    status: str
    seconds: float = 0.0
    resumed: bool = False
    headline: str = ""
    error: str = ""
    log: str = ""
    folder: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "done")


# ---------------------------------------------------------------------------- one job
def read_marker(job: Job) -> Optional[Dict]:
    try:
        with open(job.marker, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finished_before(job: Job) -> Optional[Dict]:
    """The done marker of ``job`` when an earlier run finished it with the same arguments;
    a marker of other arguments is refused (the folder holds another run)."""
    marker = read_marker(job)
    if marker is None:
        return None
    if marker.get("argv") != list(job.argv):
        raise UserError(f"{job.folder} holds a finished run with other flags than job "
                        f"{job.name}'s: delete it or choose another sweep folder")
    return marker


def resumable(job: Job) -> bool:
    return any(os.path.exists(os.path.join(str(job.folder), f)) for f in job.resume_files)


def headline(folder: str) -> str:
    """A run's result in a few words, from its ``summary.json``: the found architecture and
    its NAS-Bench-201 figure where it has one."""
    try:
        with open(os.path.join(str(folder), "summary.json"), encoding="utf-8") as f:
            s = json.load(f)
    except (OSError, ValueError):
        return ""
    parts = []
    bench, dataset = s.get("benchmark"), s.get("dataset")
    if isinstance(bench, dict) and dataset in bench:
        parts.append(f"{dataset} test {bench[dataset]:.2f}")
    elif isinstance(s.get("reported"), (int, float)):
        parts.append(f"reported {s['reported']:.2f}")
    if s.get("arch"):
        parts.append(str(s["arch"]))
    return ", ".join(parts)


def job_env(job: Job, threads: int) -> Dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update(job.env)
    return env


def _libc_prctl():
    """libc's ``prctl``, looked up here in the parent (a child between fork and exec should
    load nothing); None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the job is killed when the runner dies (a kill -9 of the sweep leaves no job
    writing its folder behind it)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Running:
    """A started job: its process, log file and clock."""

    def __init__(self, job: Job, threads: int) -> None:
        self.job = job
        self.resumed = resumable(job)
        argv = [sys.executable, *job.argv] + ([job.resume_flag] if self.resumed else [])
        Path(job.log).parent.mkdir(parents=True, exist_ok=True)
        self.logf = open(job.log, "a", encoding="utf-8")
        self.logf.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} "
                        f"{' '.join(argv[1:])}\n")
        self.logf.flush()
        self.start = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, cwd=str(REPO), env=job_env(job, threads), stdout=self.logf,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if _PRCTL is not None else None)

    def finish(self, timeout: Optional[float] = None) -> JobResult:
        rc = self.proc.wait(timeout)
        seconds = time.perf_counter() - self.start
        self.logf.close()
        return conclude(self.job, rc, seconds, self.resumed)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.logf.close()


def last_error_line(log: str) -> str:
    """The line of a job's last attempt (its log after the last ``===`` header) that says why
    it failed: the last ``error: ...`` or exception line, else its last line."""
    try:
        lines = [x.strip() for x in Path(log).read_text(errors="replace").splitlines()
                 if x.strip()]
    except OSError:
        return ""
    heads = [i for i, x in enumerate(lines) if x.startswith("=== ")]
    lines = lines[heads[-1] + 1:] if heads else lines
    for line in reversed(lines):
        if line.startswith("error:") or \
                line.split(":")[0].endswith(("Error", "Exception", "Interrupt", "Expired")):
            return line
    return lines[-1] if lines else ""


def conclude(job: Job, rc: int, seconds: float, resumed: bool) -> JobResult:
    """The result of a job that exited with ``rc``; on 0, its done marker (atomic)."""
    if rc != 0:
        why = last_error_line(job.log)
        what = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
        return JobResult(job.name, "failed", seconds, resumed, "",
                         f"{what}" + (f": {why}" if why else ""), job.log, str(job.folder))
    atomic_write_json(job.marker, {"name": job.name, "argv": list(job.argv),
                                   "seconds": round(seconds, 3), "resumed": resumed,
                                   "finished": time.strftime("%Y-%m-%d %H:%M:%S")})
    return JobResult(job.name, "ok", seconds, resumed, headline(job.folder), "", job.log,
                     str(job.folder))


def run_job(job: Job, threads: int = 0, timeout: Optional[float] = None) -> JobResult:
    """Run one job to its end here (done before: nothing is run); past ``timeout`` seconds
    it is killed and ``subprocess.TimeoutExpired`` raised."""
    marker = finished_before(job)
    if marker is not None:
        return JobResult(job.name, "done", float(marker.get("seconds", 0.0)), False,
                         headline(job.folder), "", job.log, str(job.folder))
    running = Running(job, threads)
    try:
        return running.finish(timeout)
    except BaseException:
        running.kill()
        raise


# ---------------------------------------------------------------------------- Ray
class JobEvaluator(Evaluator):
    """A sweep job as an :class:`~api.search.evaluator.Evaluator`, so that Ray runs it
    through :class:`~api.search.executors.RayExecutor` (the task's ``graph`` is the job).
    The job runs where the Ray task runs: its folder must be on a file system the driver
    sees too."""

    metric = "seconds"

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def evaluate(self, graph: Job, seed: int) -> Result:
        r = run_job(graph, self.threads)
        return Result(status="ok" if r.ok else "failed", seconds=r.seconds,
                      error=r.error or None, metrics={"resumed": float(r.resumed)})


def ray_executor(address: Optional[str], threads: int):
    """A RayExecutor reserving ``threads`` CPUs and, where the cluster has GPUs, one GPU
    per job."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install ray") from None
    from api.search.executors import RayExecutor

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    return RayExecutor(address, num_cpus=max(1, threads), num_gpus=gpus)


# ---------------------------------------------------------------------------- the sweep
def describe(r: JobResult, i: int, n: int) -> str:
    """The progress line of a finished job."""
    head = f"[{i}/{n}] {r.name}: "
    if r.status == "done":
        return head + "done before" + (f"; {r.headline}" if r.headline else "")
    if r.status == "failed":
        return head + f"FAILED in {r.seconds:.0f} s ({r.error}); log: {r.log}"
    again = " (resumed)" if r.resumed else ""
    return head + f"ok in {r.seconds:.0f} s{again}" + (f"; {r.headline}" if r.headline else "")


def check_jobs(jobs: Sequence[Job]) -> None:
    names, folders = set(), set()
    for job in jobs:
        if job.name in names:
            raise UserError(f"two sweep jobs are named {job.name!r}")
        folder = os.path.normpath(job.folder)
        if folder in folders:
            raise UserError(f"two sweep jobs write {folder}")
        names.add(job.name)
        folders.add(folder)


def run_sweep(jobs: Sequence[Job], parallel: int = 1, threads: int = 0, ray: bool = False,
              ray_address: Optional[str] = None,
              say: Callable[[str], None] = lambda s: print(s, flush=True)) -> List[JobResult]:
    """Run ``jobs``: ``parallel`` at a time as local processes with ``threads`` CPU threads
    each (0: the jobs' default), or one Ray task each (``ray``, or ``RAY_ADDRESS`` set).
    Returns one result per job, in the jobs' order; ``say`` gets one line per finished job."""
    jobs = list(jobs)
    check_jobs(jobs)
    if parallel < 1:
        raise UserError(f"--jobs must be at least 1, got {parallel}")
    if threads < 0:
        raise UserError(f"--threads must be 0 (the jobs' default) or more, got {threads}")
    results: Dict[str, JobResult] = {}
    n, count = len(jobs), [0]
    passes: Dict[str, int] = {}

    def record(r: JobResult) -> None:
        results[r.name] = r
        count[0] += 1
        say(describe(r, count[0], n))
        if r.status != "done":
            maybe_die(passes, "sweep_job")  # tests: the runner dies after this many jobs

    todo = []
    for job in jobs:
        marker = finished_before(job)
        if marker is not None:
            record(JobResult(job.name, "done", float(marker.get("seconds", 0.0)), False,
                             headline(job.folder), "", job.log, str(job.folder)))
        else:
            todo.append(job)
    if todo and (ray or os.environ.get("RAY_ADDRESS")):
        _run_on_ray(todo, threads, ray_address, record)
    elif todo:
        _run_locally(todo, parallel, threads, record)
    return [results[j.name] for j in jobs]


def _run_locally(todo: List[Job], parallel: int, threads: int,
                 record: Callable[[JobResult], None]) -> None:
    queue, running = list(todo), []
    try:
        while queue or running:
            while queue and len(running) < parallel:
                running.append(Running(queue.pop(0), threads))
            time.sleep(POLL_SECONDS)
            for r in [r for r in running if r.proc.poll() is not None]:
                running.remove(r)
                record(r.finish())
    finally:  # Ctrl-C or an error here: no job goes on writing behind the sweep
        for r in running:
            r.kill()


def _run_on_ray(todo: List[Job], threads: int, address: Optional[str],
                record: Callable[[JobResult], None]) -> None:
    executor = ray_executor(address, threads)
    evaluator = JobEvaluator(threads)
    tasks = [Task(key=job.name, graph=job, seed=0) for job in todo]
    for task, result in executor.run(evaluator, tasks):
        job = task.graph
        record(JobResult(job.name, "ok" if result.ok else "failed", result.seconds,
                         bool(result.metrics.get("resumed")),
                         headline(job.folder) if result.ok else "",
                         "" if result.ok else (result.error or "failed"), job.log,
                         str(job.folder)))


def summary_line(results: Sequence[JobResult]) -> str:
    failed = [r for r in results if r.status == "failed"]
    done = sum(r.status == "done" for r in results)
    line = (f"sweep: {len(results) - len(failed)} of {len(results)} jobs finished "
            f"({done} before this run)")
    if failed:
        line += f"; {len(failed)} failed: {', '.join(r.name for r in failed)} (run again to " \
                "retry them; finished jobs are not redone)"
    return line


# ---------------------------------------------------------------------------- CLI pieces
def add_sweep_flags(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--jobs``, ``--threads``, ``--ray``, ``--ray_address`` (``prefix``: e.g. ``ws_``)."""
    p.add_argument(f"--{prefix}jobs", type=int, default=1,
                   help="jobs at a time on this machine (each its own process)")
    p.add_argument(f"--{prefix}threads", type=int, default=0,
                   help="CPU threads per job (OMP_NUM_THREADS; 0: the job's default); under "
                        "Ray, the CPUs each task reserves")
    p.add_argument("--ray", action="store_true",
                   help="one Ray task per job (also when RAY_ADDRESS is set); a GPU per task "
                        "where the cluster has GPUs")
    p.add_argument("--ray_address", default=None,
                   help="the Ray cluster to join (default: RAY_ADDRESS, else a local one)")


def load_jobs(path: str) -> List[Job]:
    """Jobs from a JSON list of ``{"name", "argv", "folder"[, "env"]}``."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return [Job(str(d["name"]), [str(a) for a in d["argv"]], str(d["folder"]),
                    {str(k): str(v) for k, v in (d.get("env") or {}).items()})
                for d in data]
    except OSError as exc:
        raise UserError(f"jobs file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"jobs file {path} is not a JSON list of {{\"name\", \"argv\", "
                        f"\"folder\"}} ({type(exc).__name__}: {exc})") from None


def main(argv: Optional[Sequence[str]] = None) -> List[JobResult]:
    p = argparse.ArgumentParser(prog="sweep.py", description=__doc__.split("\n\n")[0])
    p.add_argument("jobs_file", help="JSON list of {\"name\", \"argv\", \"folder\"[, \"env\"]}")
    add_sweep_flags(p)
    a = p.parse_args(argv)
    results = run_sweep(load_jobs(a.jobs_file), a.jobs, a.threads, a.ray, a.ray_address)
    print(summary_line(results))
    if any(r.status == "failed" for r in results):
        sys.exit(1)
    return results


def as_dicts(results: Sequence[JobResult]) -> List[Dict]:
    return [asdict(r) for r in results]


if __name__ == "__main__":
    from api.errors import run_cli
    from api.runs import sweep as _module  # the importable module, so Ray can pickle its jobs

    run_cli(_module.main, sys.argv[1:])
