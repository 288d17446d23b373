"""NAS-Bench-201 as a tabular benchmark: the table loader, the four discrete methods
on a distinct-query budget, the journaled CLI (resume after kill -9), the table script, and
bad input. Ground-truth checks use the real table (skipped when ../shared/data is absent);
the rest a synthetic table in the real format."""
from __future__ import annotations

import csv
import functools
import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from api.benchmarks.nasbench201 import (REPORTED_COLUMNS, SIGNAL_COLUMNS, Benchmark,
                                        arch_strings, load_table)
from api.benchmarks.nb201_lookup import NB201Lookup, index_of_ops
from api.spaces.nasbench201.cell import NUM_ARCHS, arch_at
from tests.conftest import SHARED_DATA, folder_files, run_cli_inprocess, run_script, \
    run_search_until_death
from searching.nasbench201 import search as cli
from searching.nasbench201 import table as table_cli
from searching.nasbench201.expected import expected_random_search
from searching.nasbench201.methods import METHODS, _Adam, run_method

REAL = SHARED_DATA / "nasbench201" / "nb201.csv.gz"
HEADER = (
    "arch,index,nats_unique_str,nats_cifar10_test_200ep,nats_cifar100_test_200ep,"
    "nats_imagenet16_test_200ep,nb201_cifar10valid_train_200ep,nb201_cifar10valid_valid_200ep,"
    "nb201_cifar10valid_test_200ep,nb201_cifar100_train_200ep,nb201_cifar100_valid_200ep,"
    "nb201_cifar100_test_200ep,nb201_imagenet16_train_200ep,nb201_imagenet16_valid_200ep,"
    "nb201_imagenet16_test_200ep,nb201_cifar10valid_valid_12ep,nb201_cifar10_test_12ep,"
    "nb201_cifar100_valid_12ep,nb201_cifar100_test_12ep,nb201_imagenet16_valid_12ep,"
    "nb201_imagenet16_test_12ep,params_M_cifar10,flops_M_cifar10,params_M_cifar100,"
    "flops_M_cifar100,params_M_imagenet16,flops_M_imagenet16").split(",")


def write_table(path: Path, rows=None, drop=(), seed: int = 0) -> Path:
    """A NAS-Bench-201 table in the real format (gzip CSV, API index order) with random
    accuracies (2 decimals, so equal signals occur); ``rows`` keeps only the first ones,
    ``drop`` leaves columns out."""
    rng = np.random.default_rng(seed)
    header = [c for c in HEADER if c not in drop]
    strings = arch_strings()
    n = NUM_ARCHS if rows is None else rows
    values = np.round(rng.uniform(10, 95, (n, len(header) - 3)), 2)
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(n):
            w.writerow([strings[i], i, f"u{i}", *values[i].tolist()])
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_table(tmp_path_factory.mktemp("nb201") / "table.csv.gz")


@pytest.fixture
def real() -> Path:
    if not REAL.is_file():
        pytest.skip(f"the NAS-Bench-201 table is not present at {REAL}")
    return REAL


@functools.lru_cache(maxsize=2)
def table_rows(path: Path) -> dict:
    """arch string -> row, read with the csv module alone (independent of the loader)."""
    with gzip.open(path, "rt", newline="") as f:
        return {r["arch"]: r for r in csv.DictReader(f)}


def best_reported(path, method, dataset="cifar10", runs=100, budget=100) -> np.ndarray:
    ev = NB201Lookup(load_table(str(path)), dataset)
    return np.array([run_method(method, ev, budget, s).best["reported"] for s in range(runs)])


# ---------------------------------------------------------------------- ground truth
def test_expected_random_search_formula_is_exact_on_a_small_case():
    """The order-statistics formula against brute force over every draw order, with ties."""
    rng = np.random.default_rng(3)
    signal, reported = rng.integers(0, 4, 7).astype(float), rng.random(7)
    for budget in (1, 2, 4, 7):
        draws = list(itertools.permutations(range(7), budget))
        want = np.mean([reported[max(d, key=lambda i: signal[i])] for d in draws])
        assert expected_random_search(signal, reported, budget) == pytest.approx(want, 1e-12)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet16"])
def test_random_search_mean_agrees_with_the_exact_expectation(real, dataset):
    """100 runs of 100 distinct cells: the mean's distance to the closed-form expectation in
    standard errors (measured: cifar10 -1.09, cifar100 -0.94, imagenet16 -0.03). Asserted at
    2 SE, since a correct random search lands outside 1 SE a third of the time."""
    r = best_reported(real, "rs", dataset)
    table = load_table(str(real))
    want = expected_random_search(table.signal(dataset), table.reported(dataset), 100)
    se = r.std(ddof=1) / np.sqrt(r.size)
    assert abs(r.mean() - want) <= 2 * se, (r.mean(), want, se)
    if dataset == "cifar10":
        assert abs(want - 93.70) < 0.1  # the paper's random search: 93.70 ± 0.36


def test_rea_is_at_least_as_good_as_random_search(real):
    assert best_reported(real, "rea").mean() >= best_reported(real, "rs").mean()


@pytest.mark.parametrize("method", list(METHODS))
def test_every_figure_is_the_tables_value_for_the_cell(real, method, tmp_path, capsys):
    rows = table_rows(real)
    save = tmp_path / method
    code, out, err = run_cli_inprocess(cli.main, [
        "--method", method, "--dataset", "cifar100", "--budget", "40", "--seed", "1",
        "--benchmark_file", real, "--save", save, "--no_plots", "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads((save / "summary.json").read_text())
    row = rows[summary["arch"]]
    assert summary["reported"]["value"] == float(row["nb201_cifar100_test_200ep"])
    assert summary["signal"]["value"] == float(row["nb201_cifar100_valid_12ep"])
    assert summary["benchmark"] == {d: float(row[c]) for d, c in REPORTED_COLUMNS.items()}
    assert (save / "arch-best.txt").read_text().strip() == summary["arch"]
    history = [json.loads(line) for line in (save / "history.jsonl").read_text().splitlines()]
    assert len(history) == 40 == len({h["index"] for h in history})
    for h in history:
        assert h["arch"] == arch_at(h["index"]).to_string()
        assert h["signal"] == float(rows[h["arch"]]["nb201_cifar100_valid_12ep"])
        assert h["reported"] == float(rows[h["arch"]]["nb201_cifar100_test_200ep"])
    best = max(history, key=lambda h: h["signal"])  # first of equal signals
    assert summary["index"] == best["index"] == history[-1]["best_index"]


def test_loader_columns_and_index_match_the_csv(real):
    table = load_table(str(real))
    rows = table_rows(real)
    for i in (0, 1, 777, NUM_ARCHS - 1):
        row = rows[arch_at(i).to_string()]
        assert int(row["index"]) == i
        for dataset in SIGNAL_COLUMNS:
            assert table.signal(dataset)[i] == float(row[SIGNAL_COLUMNS[dataset]])
            assert table.reported(dataset)[i] == float(row[REPORTED_COLUMNS[dataset]])
    assert table.reported("cifar10").max() == pytest.approx(94.37, abs=0.01)


# ---------------------------------------------------------------------- methods
def test_index_of_ops_is_the_api_index():
    for i in (0, 5, 9999, NUM_ARCHS - 1):
        assert index_of_ops(arch_at(i).op_indices()) == i


@pytest.mark.parametrize("method", list(METHODS))
def test_same_seed_same_cells_and_budget_counts_distinct_cells(synthetic, method):
    ev = NB201Lookup(load_table(str(synthetic)), "imagenet16")
    a, b = (run_method(method, ev, 60, seed=7) for _ in range(2))
    assert a.records == b.records and a.best == b.best
    assert len(a.records) == 60 == len({r["index"] for r in a.records})
    assert [r["index"] for r in run_method(method, ev, 60, seed=8).records] != \
        [r["index"] for r in a.records]
    best = max(a.records, key=lambda r: r["signal"])
    assert a.best["index"] == best["index"]
    assert a.best["reported"] == ev.reported[best["index"]]


def test_budget_may_be_every_cell(synthetic):
    ev = NB201Lookup(load_table(str(synthetic)), "cifar10")
    ledger = run_method("rs", ev, NUM_ARCHS, seed=0)
    assert len(ledger.records) == NUM_ARCHS
    assert ledger.best["signal"] == ev.signal.max()


def test_shrink_removes_one_edge_per_step_from_seed_drawn_ops(synthetic):
    ev = NB201Lookup(load_table(str(synthetic)), "cifar10")
    cells = [arch_at(r["index"]).op_indices() for r in run_method("shrink", ev, 22, 0).records]
    assert 0 not in cells[0]  # the start: every edge carries a non-none op
    nones = [c.count(0) for c in cells]
    assert nones[:7] == [0, 1, 1, 1, 1, 1, 1]  # step 1: each of the 6 edges removed in turn
    for c in cells[1:]:  # every candidate keeps the start's ops where it keeps an edge
        assert all(o in (0, s) for o, s in zip(c, cells[0]))


def test_reinforce_adam_is_torchs():
    import torch

    rng = np.random.default_rng(0)
    mine = rng.standard_normal((6, 5))
    theirs = torch.nn.Parameter(torch.tensor(mine.copy()))
    opt, adam = torch.optim.Adam([theirs], lr=0.001), _Adam(0.001)
    for _ in range(5):
        grad = rng.standard_normal((6, 5))
        adam.step(mine, grad)
        theirs.grad = torch.tensor(grad)
        opt.step()
    np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------- CLI, resume
def _args(table, save, method="reinforce", budget=50):
    return ["--method", method, "--dataset", "cifar10", "--budget", str(budget), "--seed", "3",
            "--benchmark_file", table, "--save", save, "--quiet"]


def _same_search(cut: Path, whole: Path) -> None:
    a, b = folder_files(cut), folder_files(whole)
    assert a.keys() == b.keys()
    for name in a:
        if name in ("summary.json", "args.json"):
            continue
        assert a[name] == b[name], name
    sa, sb = (json.loads(a["summary.json"]), json.loads(b["summary.json"]))
    for s in (sa, sb):
        s.pop("search_seconds")
    assert sa == sb


@pytest.mark.parametrize("method", ["reinforce", "shrink", "rea"])
def test_killed_search_resumes_to_the_uninterrupted_result(synthetic, tmp_path, capsys,
                                                           monkeypatch, method):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_cli_inprocess(cli.main, _args(synthetic, whole, method), capsys)[0] == 0
    # killed right after start's state save (nothing queried), then right after the 23rd
    # query's journal line, then with a torn line, mid-way again; then run to the end
    files = run_search_until_death(cli.main, _args(synthetic, cut, method), "save:1", cut,
                                   capsys, monkeypatch)
    assert files["history.jsonl"] == b"" and not json.loads(files["state.json"])["done"]
    files = run_search_until_death(cli.main, [*_args(synthetic, cut, method), "--resume"],
                                   "journal:23", cut, capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 23 and "summary.json" not in files
    # a torn last line (killed mid-write) is dropped and redone
    with open(cut / "history.jsonl", "ab") as f:
        f.write(b'{"query": 24, "ind')
    files = run_search_until_death(cli.main, [*_args(synthetic, cut, method), "--resume"],
                                   "journal:10", cut, capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 33
    code, _, err = run_cli_inprocess(cli.main, [*_args(synthetic, cut, method), "--resume"],
                                     capsys)
    assert code == 0, err
    _same_search(cut, whole)


def test_resume_of_a_finished_search_rewrites_the_same_outputs(synthetic, tmp_path, capsys):
    save = tmp_path / "s"
    assert run_cli_inprocess(cli.main, _args(synthetic, save, "rs", 30), capsys)[0] == 0
    before = folder_files(save)
    assert run_cli_inprocess(cli.main, [*_args(synthetic, save, "rs", 30), "--resume"],
                             capsys)[0] == 0
    after = folder_files(save)
    assert {k: v for k, v in before.items() if k != "summary.json"} == \
        {k: v for k, v in after.items() if k != "summary.json"}


@pytest.mark.slow
def test_cli_smoke_subprocess(synthetic, tmp_path):
    save = tmp_path / "run"
    proc = run_script("searching/nasbench201/search.py", "--method", "rea", "--budget", "30",
                      "--benchmark_file", str(synthetic), "--save", str(save), check=True)
    assert "200-epoch test" in proc.stdout
    for name in ("arch-best", "arch-best.json", "arch-best.txt", "history.jsonl", "search.log",
                 "summary.json", "search.png", "state.json", "args.json"):
        assert (save / name).is_file(), name
    summary = json.loads((save / "summary.json").read_text())
    assert {"method", "space", "seed", "arch", "reported", "search_seconds",
            "device"} <= set(summary)


# ---------------------------------------------------------------------- the table script
def test_table_writes_json_plot_and_weight_sharing_rows(synthetic, tmp_path, capsys):
    ws = tmp_path / "ws"
    for n, (method, acc) in enumerate([("gdas", 60.0), ("gdas", 62.0), ("darts-v1", 50.0)]):
        (ws / str(n)).mkdir(parents=True)
        (ws / str(n) / "summary.json").write_text(json.dumps({
            "method": method, "dataset": "cifar10",
            "benchmark": {"cifar10": acc, "cifar100": 1.0, "imagenet16": 1.0}}))
    out = tmp_path / "t.json"
    code, stdout, err = run_cli_inprocess(table_cli.main, [
        "--benchmark_file", synthetic, "--out", out, "--runs", "4", "--budget", "25",
        "--datasets", "cifar10", "cifar100", "--ws_folders", ws], capsys)
    assert code == 0, err
    results = json.loads(out.read_text())
    assert set(results) == {"rs", "rea", "reinforce", "shrink", "gdas", "darts-v1"}
    assert results["gdas"] == {"cifar10": {"mean": 61.0, "std": pytest.approx(1.4142, 1e-4),
                                           "runs": 2, "search_seconds": 0.0}}
    ev = NB201Lookup(load_table(str(synthetic)), "cifar100")
    shrink = [run_method("shrink", ev, 25, s).best["reported"] for s in range(4)]
    assert results["shrink"]["cifar100"]["mean"] == pytest.approx(np.mean(shrink), abs=1e-4)
    assert results["rs"]["cifar10"]["runs"] == 4
    assert (tmp_path / "t.png").stat().st_size > 1000
    assert "paper rs" in stdout and "93.70 ± 0.36" in stdout
    assert "200-epoch test accuracy of the found cell" in stdout
    # published rows beside another budget carry a caveat; at the paper's budget they do not
    assert "caution: the paper's rows searched with 12,000 s" in stdout
    from searching.nasbench201.table import format_table
    assert "caution" not in format_table({}, ["cifar10"], {}, 100)


def test_one_shot_benchmark_lookup_reads_the_same_table(synthetic):
    bench = Benchmark(str(synthetic))
    table = load_table(str(synthetic))
    arch = arch_at(123).to_string()
    assert bench.lookup(arch) == {d: float(table.reported(d)[123]) for d in REPORTED_COLUMNS}
    assert bench.lookup("|none~0|") is None


# ---------------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bad(tmp_path_factory, synthetic) -> Path:
    root = tmp_path_factory.mktemp("bad")
    (root / "garbage.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    (root / "truncated.csv.gz").write_bytes(synthetic.read_bytes()[:20000])
    write_table(root / "tiny.csv.gz", rows=5)
    write_table(root / "no_in16.csv.gz", drop=("nb201_imagenet16_valid_12ep",))
    (root / "NAS-Bench-201-v1_1-096897.pth").write_bytes(b"not really")
    (root / "empty").mkdir()
    return root


BAD = [
    (["--benchmark_file", "{bad}/missing.csv.gz"], "not found"),
    (["--benchmark_file", "{bad}/garbage.csv.gz"], "is not the NAS-Bench-201 table"),
    (["--benchmark_file", "{bad}/truncated.csv.gz"], "is not the NAS-Bench-201 table"),
    (["--benchmark_file", "{bad}/tiny.csv.gz"], "5 rows, expected one per cell"),
    (["--benchmark_file", "{bad}/empty"], "is not the NAS-Bench-201 table"),
    (["--benchmark_file", "{bad}/no_in16.csv.gz", "--dataset", "imagenet16"],
     "no column nb201_imagenet16_valid_12ep"),
    (["--benchmark_file", "{bad}/NAS-Bench-201-v1_1-096897.pth"], "pip install nas-bench-201"),
    (["--budget", "15626"], "--budget must be between 1 and the number of cells (15625)"),
    (["--budget", "0"], "--budget must be between 1"),
    (["--dataset", "svhn"], "unknown --dataset 'svhn'"),
    (["--method", "bohb"], "unknown method 'bohb'"),
    (["--method", "rs", "--population", "5"], "--population does not apply to --method rs"),
    (["--method", "rea", "--sample_size", "0"], "--sample_size must be at least 1"),
    (["--resume", "--save", "{bad}/empty"], "holds no search state"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_and_exit_2(bad, synthetic, tmp_path, capsys, args, message):
    argv = [a.format(bad=bad) for a in args]
    if "--benchmark_file" not in argv:
        argv += ["--benchmark_file", str(synthetic)]
    if "--save" not in argv:
        argv += ["--save", str(tmp_path / "out")]
    code, out, err = run_cli_inprocess(cli.main, argv, capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_table_script_bad_input(bad, tmp_path, capsys):
    code, _, err = run_cli_inprocess(table_cli.main, [
        "--benchmark_file", bad / "no_in16.csv.gz", "--out", tmp_path / "t.json",
        "--runs", "3", "--budget", "10"], capsys)
    assert code == 2 and err.count("\n") == 1 and "nb201_imagenet16_valid_12ep" in err
    code, _, err = run_cli_inprocess(table_cli.main, [
        "--benchmark_file", bad / "tiny.csv.gz", "--out", tmp_path / "t.json",
        "--budget", "20000"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--budget" in err
