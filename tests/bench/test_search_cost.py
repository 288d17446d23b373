"""bench/search_cost.py (scripts/table_search_cost.sh): one way of handling warm-up for every
method (the first unit of each phase, reported apart and left out of the rate), the spread
over repeats, each method's phases from its CLI's records, the PTB-shaped corpus, the ratios
to AutoShrink and the OUT JSON format. The table itself is not run here (minutes)."""
from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def sc():
    spec = importlib.util.spec_from_file_location("search_cost", REPO / "bench/search_cost.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["search_cost"] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("search_cost", None)


def test_reference_candidate_counts(sc):
    assert sc.reference_candidates(28, 10, 0) == 235   # N=8, k=10 CNN search
    assert sc.reference_candidates(15, 10, 4) == 95    # N=6, k=10, keep 0.25 RNN search


def test_warm_up_is_the_first_units_excess_and_not_in_the_rate(sc):
    phase = sc.split_units([30.0, 10.0, 12.0, 11.0], total=100, name="x")
    assert phase.first == 30.0 and phase.warm == [10.0, 12.0, 11.0]
    assert phase.warmup() == pytest.approx(30.0 - 11.0)
    p = sc.project([phase])
    assert p.per_repeat == pytest.approx([1000 / 3600, 1200 / 3600, 1100 / 3600])
    assert p.hours == pytest.approx(1100 / 3600)             # median: the cold unit left out
    assert (p.hours_min, p.hours_max) == (pytest.approx(1000 / 3600), pytest.approx(1200 / 3600))
    assert p.warmup_s == pytest.approx(19.0) and p.repeats == 3
    assert p.fraction == pytest.approx(63.0 / 1100)
    # a first unit faster than the warm ones has no warm-up; none measured, none counted
    assert sc.split_units([5.0, 10.0, 10.0], 1, "y").warmup() == 0.0
    assert sc.Phase("z", None, [4.0], 1).warmup() == 0.0
    with pytest.raises(ValueError):
        sc.split_units([5.0], 1, "one unit only")
    with pytest.raises(ValueError):
        sc.project([sc.Phase("empty", 1.0, [], 1)])


def test_spread_pairs_phases_by_repeat_and_uses_medians_of_shorter_ones(sc):
    a = sc.Phase("a", 9.0, [1.0, 2.0, 3.0], total=10)
    b = sc.Phase("b", None, [5.0, 7.0], total=1)               # fewer units: its median, 6
    p = sc.project([a, b])
    assert p.per_repeat == pytest.approx([(10 + 6) / 3600, (20 + 6) / 3600, (30 + 6) / 3600])
    assert p.hours == pytest.approx(26 / 3600) and p.warmup_s == pytest.approx(7.0)


def test_autoshrink_phase_from_cumulative_curves(sc):
    curves = [{"status": "ok", "curve": [{"seconds": 20.0}, {"seconds": 30.0}]},
              {"status": "failed", "curve": [{"seconds": 99.0}]},
              {"status": "ok", "curve": [{"seconds": 12.0}, {"seconds": 23.0}]}]
    assert sc.epoch_seconds(curves[0]["curve"]) == [20.0, 10.0]
    phase = sc.autoshrink_phase(curves, 235, 20, data_scale=5.0)
    assert phase.first == 100.0 and phase.warm == [50.0, 60.0, 55.0]
    assert phase.total == 235 * 20
    assert phase.warmup() == pytest.approx(20.0 - 11.0)  # measured seconds: not data-scaled
    assert sc._units_of(curves) == 4


def test_enas_rnn_phases_per_step(sc):
    hist = [{"seconds": 2 * 9.0 + 4 * 2.0 + 5 * 1.0, "controller_seconds": 8.0,
             "derive_seconds": 5.0}] + [
            {"seconds": 2 * s + 4 * 1.0 + 5 * 0.5, "controller_seconds": 4.0,
             "derive_seconds": 2.5} for s in (3.0, 4.0, 5.0)]
    shared, ctrl, der = sc.enas_rnn_phases(hist, shared=2, controller=4, derive=5)
    assert shared.first == pytest.approx(9.0) and shared.warm == pytest.approx([3.0, 4.0, 5.0])
    assert ctrl.first == pytest.approx(2.0) and ctrl.warm == pytest.approx([1.0] * 3)
    assert der.warm == pytest.approx([0.5] * 3)
    assert (shared.total, ctrl.total, der.total) == (150 * 400, 150 * 2000, 150 * 100)
    p = sc.project([shared, ctrl, der])
    assert p.hours == pytest.approx(150 * (400 * 4.0 + 2000 * 1.0 + 100 * 0.5) / 3600)
    # the warm-up epoch's excess in measured seconds, per phase: 2 x 5 + 4 x 1 + 5 x 0.5
    assert p.warmup_s == pytest.approx(10.0 + 4.0 + 2.5)


def test_epoch_phase_scales_data_but_not_the_controller(sc):
    phase = sc.epoch_phase([{"seconds": 30.0}, {"seconds": 10.0}, {"seconds": 11.0}],
                           epochs=50, data_scale=100.0)
    assert phase.first == 3000.0 and phase.warm == [1000.0, 1100.0] and phase.total == 50
    assert phase.warmup() == pytest.approx(19.5)  # paid once: measured, not data-scaled
    phase = sc.epoch_phase([{"seconds": 10.0, "controller_seconds": 4.0}] * 2, 150, 10.0)
    assert phase.warm == [6.0 * 10 + 4.0]


def test_nao_ws_projection(sc):
    """Each phase timed in the history scales by its own count: supernet epochs by images,
    pool evaluations per architecture (and batch size), the controller per epoch x arch."""
    hist = [{"seconds": 30.0},
            {"seconds": 10.0 + 2.0 + 3.0 + 1.0, "pool_eval_seconds": 2.0,
             "controller_seconds": 3.0, "generate_seconds": 1.0, "new_archs": 5},
            {"seconds": 11.0},
            {"seconds": 12.0 + 4.0, "pool_eval_seconds": 4.0}]
    child, pool, ctrl, gen = sc.nao_ws_phases(hist, train_size=500, seed_arch=10,
                                              controller_epochs=5, eval_batch=50)
    assert child.first == 3000.0 and child.warm == [1000.0, 1100.0, 1200.0]
    assert pool.first is None and pool.warm == pytest.approx([2.0, 4.0])  # per arch, x10 batch
    assert ctrl.warm == pytest.approx([3.0 / 50]) and gen.warm == pytest.approx([0.2])
    assert (child.total, pool.total, ctrl.total, gen.total) == (150, 5000, 4_000_000, 2000)
    p = sc.project([child, pool, ctrl, gen])
    fixed = 5000 * 3.0 + 4_000_000 * 0.06 + 2000 * 0.2
    assert p.per_repeat == pytest.approx([(150 * c + fixed) / 3600 for c in (1000, 1100, 1200)])


def _tiny_probe(measure):
    return measure("micro", 3, 1, "cpu", train_images=320, controller_samples=3,
                   overrides=dict(batch_size=4, child_out_filters=4, child_num_layers=1,
                                  controller_num_aggregate=2, controller_max_step=3,
                                  max_epoch=5))


@pytest.mark.slow
def test_enas_cnn_probe_times_each_unit_after_its_warm_up(sc):
    """bench/enas_cnn_cost.py lists every timed child step and rewarded sample after its
    warm-up call; search_cost turns them into per-unit phases over the whole search."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(REPO))
    from bench.enas_cnn_cost import measure

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads per tiny op on a shared small CPU mostly wait
    try:
        m = _tiny_probe(measure)
    finally:
        torch.set_num_threads(threads)

    assert len(m["child_step_times"]) == 3 and len(m["sample_times"]) == 3
    assert m["child_warmup_seconds"] > 0 and m["sample_warmup_seconds"] > 0
    assert m["seconds_per_controller_step"] == pytest.approx(2 * sum(m["sample_times"]) / 3)
    child, sample = sc.enas_cnn_phases(m)
    assert child.total == 5 * 80 and sample.total == 5 * (3 * 2 + m["derive_samples_per_epoch"])
    assert child.warm == m["child_step_times"] and sample.first == m["sample_warmup_seconds"]


def test_ptb_shaped_corpus_has_ptbs_vocabulary(sc, tmp_path):
    sys.path.insert(0, str(REPO))
    from api.lm.data import Corpus

    folder = sc.write_ptb_shaped(tmp_path / "ptb", 12_000, 500)
    corpus = Corpus(str(folder))
    assert corpus.ntokens == sc.PTB_VOCAB == 10_000
    assert sc.corpus_words(folder) == corpus.train.numel() and corpus.valid.numel() > 500


def test_ratios_table_and_out_json(sc, tmp_path):
    rows = [sc.Row("autoshrink", "cnn", 2.0, "cpu", 1e-4, "", 1.5, 2.5, 3.0, 3),
            sc.Row("enas-micro", "cnn", 15.0, "cpu", 1e-5),
            sc.Row("autoshrink", "rnn", 4.0, "cpu", 1e-3), sc.Row("enas", "rnn", 30.0, "cpu",
                                                                  1e-5)]
    rel = sc.ratios(rows)
    assert rel["cnn"]["enas-micro"] == pytest.approx(7.5)
    assert rel["rnn"]["enas"] == pytest.approx(7.5) and rel["rnn"]["autoshrink"] == 1.0
    text = sc.format_table(rows)
    assert "7.50x" in text and "6.7x (RNN)" in text and "7.2x (CNN)" in text
    assert "1.50-2.50" in text and "warm-up" in text
    out = tmp_path / "cost.json"
    sc.write_out(str(out), rows, {"gdas": "RuntimeError: boom"}, quick=True,
                 extra={"setting": {"threads": 1}})
    data = json.loads(out.read_text())
    assert [set(r) >= {"method", "task", "hours", "hours_min", "hours_max", "warmup_s",
                       "repeats", "device", "measured_fraction", "load"}
            for r in data["rows"]] == [True] * 4
    assert data["rows"][0]["hours_min"] == 1.5 and data["rows"][0]["warmup_s"] == 3.0
    assert math.isnan(data["rows"][1]["hours_min"])  # not measured over repeats
    assert data["not_measured"] == {"gdas": "RuntimeError: boom"} and data["quick"] is True
    assert data["setting"] == {"threads": 1}


def test_bad_method_or_data_exits_2(sc, tmp_path, capsys):
    assert sc.main(["--methods", "nope", "--out", str(tmp_path / "x.json")]) in (2,)
    assert sc.main(["--ptb", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("error: ") for line in err)


def test_method_runs_go_through_the_sweep_runner_one_at_a_time(sc, tmp_path):
    import argparse

    runner = sc.Runner(argparse.Namespace(threads=1), tmp_path)
    code = ("import os, sys; save = sys.argv[sys.argv.index('--save') + 1]; "
            "os.makedirs(save); print(os.environ['OMP_NUM_THREADS'])")
    folder = runner.run("ok", ["-c", code, "--save", str(tmp_path / "ok")], 60)
    assert folder == tmp_path / "ok" and (folder / "sweep-done.json").is_file()
    assert (tmp_path / "ok.log").read_text().splitlines()[-1] == "1"  # its threads
    with pytest.raises(RuntimeError, match="exit 3: error: no data"):
        runner.run("bad", ["-c", "import sys; print('error: no data'); sys.exit(3)"], 60)
    import subprocess

    with pytest.raises(subprocess.TimeoutExpired):
        runner.run("slow", ["-c", "import time; time.sleep(30)"], 0.5)


def test_ray_runs_one_measurement_per_task_and_gathers_the_rows(sc, tmp_path, monkeypatch,
                                                                capsys):
    from api.runs import sweep

    seen = {}

    def fake_sweep(jobs, parallel=1, threads=0, ray=False, **kw):
        seen.update(ray=ray, threads=threads, argv=[j.argv for j in jobs])
        out = []
        for job in jobs:
            method = job.argv[job.argv.index("--methods") + 1]
            if method == "gdas":  # this one's task failed before writing its row
                out.append(sweep.JobResult(job.name, "failed", error="exit 1: boom"))
                continue
            sc.write_out(str(Path(job.folder) / "row.json"),
                         [sc.Row(method, "cnn", 2.0, "cpu", 0.01)], {}, True)
            out.append(sweep.JobResult(job.name, "ok"))
        return out

    from pathlib import Path

    monkeypatch.setattr(sweep, "run_sweep", fake_sweep)
    for name in ("CIFAR", "PTB"):
        (tmp_path / name.lower()).mkdir()
    (tmp_path / "cifar" / "cifar-10-batches-py").mkdir()
    (tmp_path / "ptb" / "train.txt").write_text("a b\n")
    out = tmp_path / "cost.json"
    assert sc.main(["--ray", "--quick", "--methods", "darts-v1,gdas", "--out", str(out),
                    "--cifar", str(tmp_path / "cifar"), "--ptb", str(tmp_path / "ptb"),
                    "--threads", "1"]) == 0
    assert seen["ray"] is True and seen["threads"] == 1
    assert [a[a.index("--methods") + 1] for a in seen["argv"]] == ["darts-v1", "gdas"]
    assert all("--quick" in a and a[0] == "bench/search_cost.py" for a in seen["argv"])
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["rows"]] == ["darts-v1"]
    assert data["not_measured"] == {"gdas": "exit 1: boom"}
    assert (tmp_path / "cost_ray" / "darts-v1" / "row.json").is_file()
