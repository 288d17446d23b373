"""The sweep runner (api/runs/sweep.py) on tiny stand-in jobs (``python -c``: no torch, a
fraction of a second each): N at a time, done markers, a failing job, rerun after a failure
and after the runner itself died, and Ray."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from api.errors import UserError
from api.runs import sweep
from api.runs.fault_injection import DIE_AT_ENV
from api.runs.sweep import DONE_FILE, Job, run_sweep

#: A stand-in run: ``--save DIR [--resume]``. It appends one line per start to DIR.starts,
#: writes DIR/checkpoint.pt, dies with 137 when FAKE_DIE is set (as a killed run), sleeps
#: FAKE_SLEEP seconds, fails with an error line when FAKE_FAIL is set, else writes
#: DIR/summary.json (the value depends on the argv only).
FAKE = r"""
import json, os, sys, time
save = sys.argv[sys.argv.index('--save') + 1]
os.makedirs(save, exist_ok=True)
with open(save + '.starts', 'a') as f:
    f.write(' '.join(sys.argv[1:]) + '\n')
resumed = '--resume' in sys.argv
open(os.path.join(save, 'checkpoint.pt'), 'w').write('x')
if os.environ.get('FAKE_DIE'):
    os._exit(137)
time.sleep(float(os.environ.get('FAKE_SLEEP', '0')))
if os.environ.get('FAKE_FAIL'):
    print('error: the run could not go on', file=sys.stderr)
    sys.exit(2)
json.dump({'arch': 'cell-' + os.path.basename(save), 'dataset': 'cifar10',
           'benchmark': {'cifar10': 50.0 + len(save) % 7}, 'resumed': resumed},
          open(os.path.join(save, 'summary.json'), 'w'))
"""


def fake_jobs(root: Path, n: int, **env) -> list:
    return [Job(f"job{k}", ["-c", FAKE, "--save", str(root / f"job{k}")], str(root / f"job{k}"),
                {k2: str(v) for k2, v in env.items()}) for k in range(n)]


def starts(job: Job) -> list:
    path = Path(job.folder + ".starts")
    return path.read_text().splitlines() if path.exists() else []


def test_jobs_run_n_at_a_time_and_leave_done_markers(tmp_path):
    jobs = fake_jobs(tmp_path, 4, FAKE_SLEEP=0.3)
    lines = []
    t0 = time.perf_counter()
    results = run_sweep(jobs, parallel=4, say=lines.append)
    assert time.perf_counter() - t0 < 4 * 0.3 + 1.0  # ran side by side
    assert [r.status for r in results] == ["ok"] * 4
    assert len(lines) == 4 and all(" ok in " in x for x in lines)
    assert sorted(x.split("]")[0] for x in lines) == [f"[{i}/4" for i in range(1, 5)]
    assert "cifar10 test" in lines[0] and "cell-job" in lines[0]  # the result's headline
    for job in jobs:
        marker = json.loads((Path(job.folder) / DONE_FILE).read_text())
        assert marker["argv"] == job.argv and marker["name"] == job.name
        assert Path(job.log).read_text().startswith("=== ")
    again = []
    results = run_sweep(jobs, parallel=2, say=again.append)  # all done: nothing is rerun
    assert [r.status for r in results] == ["done"] * 4
    assert all("done before" in x for x in again)
    assert all(len(starts(j)) == 1 for j in jobs)


def test_a_failing_job_is_one_line_and_the_others_go_on(tmp_path, capsys):
    jobs = fake_jobs(tmp_path, 3)
    jobs[1].env["FAKE_FAIL"] = "1"
    lines = []
    results = run_sweep(jobs, parallel=1, say=lines.append)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    failed = [x for x in lines if "FAILED" in x]
    assert len(failed) == 1
    assert "exit 2: error: the run could not go on" in failed[0]
    assert f"log: {jobs[1].log}" in failed[0]
    assert not (Path(jobs[1].folder) / DONE_FILE).exists()
    assert "1 failed: job1" in sweep.summary_line(results)
    # the CLI over a jobs file exits non-zero at the end, after running every job
    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps([{"name": j.name, "argv": j.argv, "folder": j.folder + "b",
                                 "env": j.env} for j in jobs]))
    with pytest.raises(SystemExit) as exc:
        sweep.main([str(spec)])
    assert exc.value.code == 1
    assert "2 of 3 jobs finished" in capsys.readouterr().out


def test_an_interrupted_job_is_rerun_with_resume_and_a_finished_one_is_not(tmp_path):
    jobs = fake_jobs(tmp_path, 2)
    jobs[1].env["FAKE_DIE"] = "1"  # dies after writing its checkpoint, as a kill -9 would
    first = run_sweep(jobs, say=lambda s: None)
    assert [r.status for r in first] == ["ok", "failed"]
    assert "exit 137" in first[1].error
    jobs[1].env.clear()
    lines = []
    second = run_sweep(jobs, say=lines.append)
    assert [r.status for r in second] == ["done", "ok"]
    assert second[1].resumed and "(resumed)" in lines[1]
    assert starts(jobs[0]) == [" ".join(jobs[0].argv[2:])]  # run once
    assert starts(jobs[1])[-1].endswith("--resume")
    assert json.loads((Path(jobs[1].folder) / "summary.json").read_text())["resumed"]


class Died(BaseException):
    pass


def test_a_killed_sweep_leaves_no_job_running_and_a_rerun_finishes_it(tmp_path, monkeypatch):
    ref = fake_jobs(tmp_path / "ref", 4)
    run_sweep(ref, parallel=2, say=lambda s: None)
    jobs = fake_jobs(tmp_path / "run", 4)
    jobs[0].env["FAKE_SLEEP"] = "0.5"  # job1 has written its checkpoint when job0 ends
    jobs[1].env["FAKE_SLEEP"] = "30"  # still running when the runner dies

    def die(status):
        assert status == 137
        raise Died

    monkeypatch.setenv(DIE_AT_ENV, "sweep_job:1")
    monkeypatch.setattr(os, "_exit", die)
    started = []
    real_running = sweep.Running
    monkeypatch.setattr(sweep, "Running", lambda *a: started.append(real_running(*a))
                        or started[-1])
    with pytest.raises(Died):
        run_sweep(jobs, parallel=2, say=lambda s: None)
    assert all(r.proc.poll() is not None for r in started)  # the sweep took its jobs down
    assert sum((Path(j.folder) / DONE_FILE).exists() for j in jobs) == 1
    monkeypatch.delenv(DIE_AT_ENV)
    jobs[1].env.clear()
    results = run_sweep(jobs, parallel=2, say=lambda s: None)
    assert sorted(r.status for r in results) == ["done", "ok", "ok", "ok"]
    assert results[1].resumed  # it had written its checkpoint before the kill
    for a, b in zip(ref, jobs):
        sa = json.loads((Path(a.folder) / "summary.json").read_text())
        sb = json.loads((Path(b.folder) / "summary.json").read_text())
        assert sa["arch"] == sb["arch"]


def test_bad_sweeps_are_one_line(tmp_path):
    jobs = fake_jobs(tmp_path, 1)
    run_sweep(jobs, say=lambda s: None)
    other = [Job("job0", jobs[0].argv + ["--epochs", "3"], jobs[0].folder)]
    with pytest.raises(UserError, match="holds a finished run with other flags"):
        run_sweep(other, say=lambda s: None)
    with pytest.raises(UserError, match="two sweep jobs are named"):
        run_sweep(fake_jobs(tmp_path / "a", 1) + fake_jobs(tmp_path / "b", 1))
    with pytest.raises(UserError, match="--jobs must be at least 1"):
        run_sweep(fake_jobs(tmp_path / "c", 1), parallel=0)
    (tmp_path / "bad.json").write_text("{\"name\": 1}")
    with pytest.raises(UserError, match="is not a JSON list"):
        sweep.load_jobs(str(tmp_path / "bad.json"))
    with pytest.raises(UserError, match="jobs file .*missing.json"):
        sweep.load_jobs(str(tmp_path / "missing.json"))


@pytest.mark.slow
def test_the_same_sweep_on_a_local_ray_cluster(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is optional (pip install ray)")
    local = fake_jobs(tmp_path / "local", 3)
    run_sweep(local, parallel=2, say=lambda s: None)
    jobs = fake_jobs(tmp_path / "ray", 3)
    jobs[2].env["FAKE_FAIL"] = "1"
    # Ray workers import the project from the root
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(sweep.REPO)}})
    try:
        lines = []
        results = run_sweep(jobs, threads=1, ray=True, say=lines.append)
        assert [r.status for r in results] == ["ok", "ok", "failed"]
        assert "exit 2: error: the run could not go on" in results[2].error
        jobs[2].env.clear()
        again = run_sweep(jobs, threads=1, ray=True, say=lambda s: None)
        assert [r.status for r in again] == ["done", "done", "ok"]
    finally:
        ray.shutdown()
    for a, b in zip(local, jobs):
        assert json.loads((Path(a.folder) / "summary.json").read_text())["arch"] == \
            json.loads((Path(b.folder) / "summary.json").read_text())["arch"]


@pytest.mark.slow
def test_the_sweep_cli_smoke(tmp_path):
    from tests.conftest import run_script

    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps([{"name": j.name, "argv": j.argv, "folder": j.folder}
                                for j in fake_jobs(tmp_path, 2)]))
    proc = run_script("api/runs/sweep.py", str(spec), "--jobs", "2", check=True)
    assert proc.stdout.count(" ok in ") == 2 and "2 of 2 jobs finished" in proc.stdout
    proc = run_script("api/runs/sweep.py", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and proc.stderr.startswith("error: jobs file")
