"""The weight-sharing rows of the NAS-Bench-201 table: each method's CLI per the shared
contract, rows from the searches' summaries, the sweep of real searches at a tiny scale
(WS_RUNS=1; killed and rerun; resumed), and the pictures. Real CIFAR-10 and the real table
from ../shared/data when present, else tiny synthetic ones in the real formats."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from api.errors import UserError
from api.runs import sweep
from api.runs.fault_injection import DIE_AT_ENV
from api.runs.sweep import DONE_FILE, run_sweep
from api.spaces.nasbench201.cell import Cell, arch_at
from searching.nasbench201 import table as table_cli
from searching.nasbench201 import ws_table
from tests.conftest import SHARED_CIFAR, SHARED_DATA, run_cli_inprocess, write_cifar10
from tests.searching.nasbench201.test_nb201_tabular import write_table

REAL_TABLE = SHARED_DATA / "nasbench201" / "nb201.csv.gz"
#: The searches' tiny scale: 64 images (32 per half), batches of 16, C=4, one cell per stage.
TINY = ["--ws_train_size", "64", "--ws_flags", "--init_channels 4 --layers 1 --batch_size 16",
        "--ws_threads", "1", "--ws_device", "cpu"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    if REAL_TABLE.is_file():
        return REAL_TABLE
    return write_table(tmp_path_factory.mktemp("nb201") / "table.csv.gz")


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    if (SHARED_CIFAR / "cifar-10-batches-py").is_dir():
        return SHARED_CIFAR
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_batch=40, test=20)


def table_argv(bench: Path, cifar: Path, out: Path, *more: str) -> list:
    return ["--benchmark_file", str(bench), "--out", str(out), "--runs", "2", "--budget", "5",
            "--datasets", "cifar10", "--ws_data", str(cifar), *TINY, *more]


def strip_seconds(results: dict) -> dict:
    return {m: {d: {k: v for k, v in c.items() if k != "search_seconds"}
                for d, c in by_d.items()} for m, by_d in results.items()}


# ---------------------------------------------------------------------- the contract
def test_each_method_runs_its_own_cli_with_the_shared_flags(tmp_path):
    jobs = ws_table.ws_jobs(ws_table.WS_METHODS, ["cifar10", "cifar100"], 2, str(tmp_path),
                            "data", "t.csv.gz", epochs=3, train_size=200, flags="--layers 1")
    assert len(jobs) == 6 * 2 * 2
    by_name = {j.name: j for j in jobs}
    expect = {"rsps": "searching/rsps/search.py", "darts-v1": "searching/darts/train_search.py",
              "darts-v2": "searching/darts/train_search.py", "gdas": "searching/gdas/search.py",
              "setn": "searching/setn/search.py", "enas": "searching/enas/search_nb201.py"}
    for method, cli in expect.items():
        job = by_name[f"{method}-cifar100-seed1"]
        assert job.argv[0] == cli
        assert ("--unrolled" in job.argv) == (method == "darts-v2")
        assert job.folder == str(tmp_path / "cifar100" / method / "seed1")
        flags = dict(zip(job.argv, job.argv[1:]))
        assert flags["--space"] == "nas-bench-201" and flags["--dataset"] == "cifar100"
        assert flags["--save"] == job.folder and flags["--seed"] == "1"
        assert flags["--epochs"] == "3" and flags["--train_size"] == "200"
        assert flags["--benchmark_file"] == os.path.abspath("t.csv.gz")
        assert flags["--data"] == os.path.abspath("data") and flags["--device"] == "auto"
        assert {"--quiet", "--no_plots"} <= set(job.argv) and job.argv[-2:] == ["--layers", "1"]
    # unset: the CLIs' own (the paper's) epochs and images
    plain = ws_table.ws_jobs(["gdas"], ["cifar10"], 1, str(tmp_path), "d", "t")[0]
    assert "--epochs" not in plain.argv and "--train_size" not in plain.argv


def test_methods_and_datasets_are_checked(monkeypatch):
    with pytest.raises(UserError, match="unknown weight-sharing method 'snas'"):
        ws_table.check_methods(["snas"])
    monkeypatch.setitem(ws_table.WS_CLIS, "setn", ["searching/setn/not_here.py"])
    with pytest.raises(UserError, match=r"no search CLI in this checkout for setn"):
        ws_table.check_methods(["gdas", "setn"])
    assert ws_table.check_methods(["darts-v1", "darts-v2", "gdas"]) == \
        ["darts-v1", "darts-v2", "gdas"]
    assert ws_table.ws_datasets(None, ["cifar10", "cifar100", "imagenet16"]) == \
        ["cifar10", "cifar100"]
    with pytest.raises(UserError, match="'imagenet16' is not searched with weight sharing"):
        ws_table.ws_datasets(["imagenet16"], ["cifar10"])


def test_rows_hold_each_dataset_from_its_own_searches():
    def s(method, dataset, acc, seconds):
        return {"method": method, "dataset": dataset, "search_seconds": seconds,
                "benchmark": {"cifar10": acc, "cifar100": acc - 20, "imagenet16": acc - 40}}

    rows = ws_table.ws_rows([s("gdas", "cifar10", 93.0, 10), s("gdas", "cifar10", 94.0, 20),
                             s("gdas", "cifar100", 90.0, 30), s("darts-v1", "cifar10", 54.3, 5)],
                            ["cifar10", "cifar100"])
    assert list(rows) == ["darts-v1", "gdas"]  # the paper's order
    assert rows["gdas"]["cifar10"] == {"mean": 93.5, "std": pytest.approx(0.7071, abs=1e-4),
                                       "runs": 2, "search_seconds": 15.0}
    assert rows["gdas"]["cifar100"] == {"mean": 70.0, "std": 0.0, "runs": 1,
                                        "search_seconds": 30.0}
    assert rows["darts-v1"] == {"cifar10": {"mean": 54.3, "std": 0.0, "runs": 1,
                                            "search_seconds": 5.0}}


def test_finished_folders_become_rows_and_pictures(tmp_path, bench, capsys):
    for n, (method, seed, acc) in enumerate([("gdas", 0, 60.0), ("gdas", 1, 62.0),
                                             ("darts-v1", 0, 50.0)]):
        folder = tmp_path / "ws" / str(n)
        folder.mkdir(parents=True)
        per_epoch = [{"cifar10": acc - 5, "cifar100": 1.0}, {"cifar10": acc, "cifar100": 1.0}]
        (folder / "summary.json").write_text(json.dumps({
            "method": method, "dataset": "cifar10", "seed": seed, "search_seconds": 3.0,
            "arch": arch_at(100 + n).to_string(), "benchmark_per_epoch": per_epoch,
            "benchmark": {"cifar10": acc, "cifar100": 1.0, "imagenet16": 1.0}}))
    (tmp_path / "ws" / "deep" / "3").mkdir(parents=True)  # still running: left out
    (tmp_path / "ws" / "deep" / "3" / "summary.json").write_text(json.dumps({
        "method": "gdas", "dataset": "cifar10", "finished": False,
        "benchmark": {"cifar10": 10.0}}))
    out = tmp_path / "t.json"
    code, stdout, err = run_cli_inprocess(table_cli.main, [
        "--benchmark_file", bench, "--out", out, "--runs", "2", "--budget", "5",
        "--datasets", "cifar10", "cifar100", "--ws_folders", tmp_path / "ws"], capsys)
    assert code == 0, err
    assert "1 unfinished search(es) left out" in stdout
    results = json.loads(out.read_text())
    assert results["gdas"] == {"cifar10": {"mean": 61.0, "std": pytest.approx(1.4142, 1e-4),
                                           "runs": 2, "search_seconds": 3.0}}
    assert "paper gdas" in stdout and "93.61 ± 0.09" in stdout and "70.70 ± 0.30" in stdout
    assert "paper darts-v1" in stdout and "54.30 ± 0.00" in stdout
    for name in ("t_ws.png", "t_cells.png"):
        assert (tmp_path / name).stat().st_size > 5000, name


def test_bad_weight_sharing_input_is_one_line(tmp_path, bench, capsys):
    (tmp_path / "empty").mkdir()
    for argv, message in [
            (["--ws_folders", str(tmp_path / "empty")], "holds no summary.json"),
            (["--ws_runs", "1", "--ws_methods", "snas"], "unknown weight-sharing method"),
            (["--ws_runs", "1", "--datasets", "imagenet16"], "none of the table's datasets"),
            (["--ws_runs", "-1"], "WS_RUNS must be 0"),
            (["--ws_runs", "1", "--ws_methods", "gdas", "--ws_jobs", "0"],
             "WS_JOBS (--ws_jobs) must be at least 1"),
            (["--ws_runs", "1", "--ws_methods", "gdas", "--ws_datasets", "imagenet16"],
             "'imagenet16' is not searched with weight sharing")]:
        code, _, err = run_cli_inprocess(table_cli.main, [
            "--benchmark_file", bench, "--out", tmp_path / "t.json", "--runs", "2",
            "--budget", "5", "--datasets", "cifar10", *argv], capsys)
        assert code == 2 and err.startswith("error: ") and message in err, (argv, err)
        assert "Traceback" not in err


def test_cells_are_drawn_with_their_ops():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from api.spaces.nasbench201.draw import draw_cell

    fig, ax = plt.subplots()
    draw_cell(ax, Cell(("nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3",
                        "nor_conv_1x1", "nor_conv_3x3")), "t")
    labels = sorted(t.get_text() for t in ax.texts)
    plt.close(fig)
    assert labels == sorted(["conv3x3", "none", "skip", "pool3x3", "conv1x1", "conv3x3",
                             "in", "1", "2", "out"])


# ---------------------------------------------------------------------- real searches
@pytest.mark.slow
def test_ws_runs_1_fills_the_weight_sharing_rows(tmp_path, bench, cifar, capsys):
    out = tmp_path / "t.json"
    code, stdout, err = run_cli_inprocess(table_cli.main, table_argv(
        bench, cifar, out, "--ws_runs", "1", "--ws_epochs", "2", "--ws_jobs", "2"), capsys)
    assert code == 0, err + stdout
    results = json.loads(out.read_text())
    for method in ws_table.WS_METHODS:  # all six by default
        cell = results[method]["cifar10"]
        assert cell["runs"] == 1 and 0 < cell["mean"] < 100 and cell["search_seconds"] > 0
        summary = json.loads((tmp_path / "t_ws" / "cifar10" / method / "seed0" /
                              "summary.json").read_text())
        assert summary["finished"] and len(summary["benchmark_per_epoch"]) == 2
        assert cell["mean"] == pytest.approx(summary["benchmark"]["cifar10"], abs=1e-4)
        assert f"] {method}-cifar10-seed0: ok in" in stdout
    assert "6 of 6 jobs finished" in stdout
    assert (tmp_path / "t_ws.png").is_file() and (tmp_path / "t_cells.png").is_file()
    # run again: nothing is searched again, the same rows come back
    code, stdout, err = run_cli_inprocess(table_cli.main, table_argv(
        bench, cifar, out, "--ws_runs", "1", "--ws_epochs", "2", "--no_plots"), capsys)
    assert code == 0 and stdout.count("done before") == 6, err
    assert json.loads(out.read_text()) == results


class Died(BaseException):
    pass


@pytest.mark.slow
def test_a_sweep_killed_midway_and_rerun_gives_the_same_table(tmp_path, bench, cifar, capsys,
                                                              monkeypatch):
    more = ["--ws_runs", "2", "--ws_methods", "darts-v1", "gdas", "--ws_epochs", "2",
            "--ws_jobs", "2", "--no_plots"]
    code, _, err = run_cli_inprocess(table_cli.main, table_argv(
        bench, cifar, tmp_path / "a" / "t.json", *more), capsys)
    assert code == 0, err
    uninterrupted = json.loads((tmp_path / "a" / "t.json").read_text())

    def die(status):
        raise Died

    with monkeypatch.context() as m:  # the runner dies as kill -9 after its first job
        m.setenv(DIE_AT_ENV, "sweep_job:1")
        m.setattr(os, "_exit", die)
        with pytest.raises(Died):
            table_cli.main(table_argv(bench, cifar, tmp_path / "b" / "t.json", *more))
    capsys.readouterr()
    done = list((tmp_path / "b" / "t_ws").rglob(DONE_FILE))
    assert len(done) == 1 and not (tmp_path / "b" / "t.json").exists()
    code, stdout, err = run_cli_inprocess(table_cli.main, table_argv(
        bench, cifar, tmp_path / "b" / "t.json", *more), capsys)
    assert code == 0, err
    assert stdout.count("done before") == 1 and "4 of 4 jobs finished" in stdout
    rerun = json.loads((tmp_path / "b" / "t.json").read_text())
    assert strip_seconds(rerun) == strip_seconds(uninterrupted)
    assert set(rerun) >= {"darts-v1", "gdas"}


@pytest.mark.slow
def test_an_interrupted_search_resumes_to_the_uninterrupted_result(tmp_path, bench, cifar):
    def jobs(root):
        return ws_table.ws_jobs(["gdas"], ["cifar10"], 1, str(root), str(cifar), str(bench),
                                epochs=2, train_size=64, device="cpu",
                                flags="--init_channels 4 --layers 1 --batch_size 16")

    ref = jobs(tmp_path / "ref")
    assert run_sweep(ref, threads=1, say=lambda s: None)[0].status == "ok"
    run = jobs(tmp_path / "run")
    run[0].env[DIE_AT_ENV] = "epoch:1"  # killed right after its first epoch's checkpoint
    lines = []
    first = run_sweep(run, threads=1, say=lines.append)
    assert first[0].status == "failed" and "exit 137" in lines[0] and run[0].log in lines[0]
    run[0].env.clear()
    second = run_sweep(run, threads=1, say=lines.append)
    assert second[0].status == "ok" and second[0].resumed and "(resumed)" in lines[1]
    a, b = (json.loads((Path(j[0].folder) / "summary.json").read_text()) for j in (ref, run))
    for key in ("arch", "benchmark", "benchmark_per_epoch", "final_train_acc",
                "final_val_acc"):
        assert a[key] == b[key], key
    assert sweep.read_marker(run[0])["resumed"] is True


@pytest.mark.slow
def test_the_same_weight_sharing_sweep_on_a_local_ray_cluster(tmp_path, bench, cifar, capsys):
    ray = pytest.importorskip("ray", reason="Ray is optional (pip install ray)")
    more = ["--ws_runs", "1", "--ws_methods", "darts-v1", "gdas", "--ws_epochs", "1",
            "--no_plots"]
    code, _, err = run_cli_inprocess(table_cli.main, table_argv(
        bench, cifar, tmp_path / "local" / "t.json", *more), capsys)
    assert code == 0, err
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(sweep.REPO)}})
    try:
        code, stdout, err = run_cli_inprocess(table_cli.main, table_argv(
            bench, cifar, tmp_path / "ray" / "t.json", *more, "--ray"), capsys)
    finally:
        ray.shutdown()
    assert code == 0, err
    assert "one Ray task each" in stdout and "2 of 2 jobs finished" in stdout
    local, on_ray = (json.loads((tmp_path / d / "t.json").read_text()) for d in ("local", "ray"))
    assert strip_seconds(on_ray) == strip_seconds(local)


@pytest.mark.slow
def test_the_table_script_runs_the_weight_sharing_sweep(tmp_path, bench, cifar):
    import subprocess

    from tests.conftest import REPO

    env = dict(os.environ, RUNS="2", BUDGET="5", DATASETS="cifar10", BENCHMARK_FILE=str(bench),
               OUT=str(tmp_path / "t.json"), WS_RUNS="1", WS_METHODS="gdas", WS_EPOCHS="1",
               WS_TRAIN_SIZE="64", WS_DATA=str(cifar), WS_DEVICE="cpu", WS_THREADS="1",
               WS_FLAGS="--init_channels 4 --layers 1 --batch_size 16")
    proc = subprocess.run(["bash", str(REPO / "scripts/table_nasbench201.sh")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "gdas-cifar10-seed0: ok in" in proc.stdout
    assert json.loads((tmp_path / "t.json").read_text())["gdas"]["cifar10"]["runs"] == 1
    assert (tmp_path / "t_ws" / "cifar10" / "gdas" / "seed0" / DONE_FILE).is_file()
    assert (tmp_path / "t_cells.png").is_file()
    proc = subprocess.run(["bash", str(REPO / "scripts/table_nasbench201.sh")],
                          env=dict(env, WS_RUNS="runs/old"), capture_output=True, text=True)
    assert proc.returncode == 2 and "finished search folders go in WS_FOLDERS" in proc.stderr
