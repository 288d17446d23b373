"""bench/search_cost.py (scripts/table_search_cost.sh): the projections from a measured
fraction to a whole search, the ratios to AutoShrink, the OUT JSON format. The table itself
is not run here (minutes)."""
from __future__ import annotations

import importlib.util
import json
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


def test_autoshrink_projection(sc):
    recs = [{"seconds": 30.0, "epochs": 1, "status": "ok"},
            {"seconds": 50.0, "epochs": 3, "status": "ok"},
            {"seconds": 1.0, "epochs": 0, "status": "failed"}]
    hours, frac = sc.project_autoshrink(recs, 235, 20, data_scale=5.0)
    assert hours == pytest.approx(235 * 20 * (80.0 / 4) * 5.0 / 3600)
    assert frac == pytest.approx(4 / (235 * 20))
    with pytest.raises(ValueError):
        sc.project_autoshrink(recs[2:], 95, 10)


def test_enas_rnn_projection(sc):
    rec = {"seconds": 2 * 3.0 + 4 * 1.0 + 5 * 0.5, "controller_seconds": 4.0,
           "derive_seconds": 2.5}
    hours, frac = sc.project_enas_rnn(rec, shared=2, controller=4, derive=5)
    assert hours == pytest.approx(150 * (400 * 3.0 + 2000 * 1.0 + 100 * 0.5) / 3600)
    assert frac == pytest.approx(11 / (150 * 2500))


def test_nao_ws_projection(sc):
    """Each phase timed in the history scales by its own count: supernet epochs by images,
    pool evaluations per architecture (and batch size), the controller per epoch x arch."""
    first = {"seconds": 10.0 + 2.0 + 3.0 + 1.0, "pool_eval_seconds": 2.0,
             "controller_seconds": 3.0, "generate_seconds": 1.0, "new_archs": 5}
    last = {"seconds": 10.0 + 2.0, "pool_eval_seconds": 2.0}
    hours, frac = sc.project_nao_ws([first, last], train_size=500, seed_arch=10,
                                    controller_epochs=5, eval_batch=50)
    child = 10.0 * 100                 # 500 -> 50,000 images
    per_arch = 2.0 / 10 * 500 / 50     # per arch, batch 50 -> 500
    ctrl = 3.0 / (5 * 10)              # per controller epoch and pool arch
    total = 150 * child + 5 * 1000 * per_arch + 4 * (1000 * 1000 * ctrl + 500 * 1.0 / 5)
    assert hours == pytest.approx(total / 3600)
    assert frac == pytest.approx(28.0 / total)


def test_epoch_projection_scales_data_but_not_the_controller(sc):
    hours, frac = sc.project_epoch({"seconds": 10.0}, epochs=50, data_scale=100.0)
    assert hours == pytest.approx(50 * 1000.0 / 3600) and frac == pytest.approx(1 / 5000)
    hours, _ = sc.project_epoch({"seconds": 10.0, "controller_seconds": 4.0}, 150, 10.0)
    assert hours == pytest.approx(150 * (6.0 * 10 + 4.0) / 3600)


def test_ratios_table_and_out_json(sc, tmp_path):
    rows = [sc.Row("autoshrink", "cnn", 2.0, "cpu", 1e-4), sc.Row("enas-micro", "cnn", 15.0,
                                                                 "cpu", 1e-5),
            sc.Row("autoshrink", "rnn", 4.0, "cpu", 1e-3), sc.Row("enas", "rnn", 30.0, "cpu",
                                                                  1e-5)]
    rel = sc.ratios(rows)
    assert rel["cnn"]["enas-micro"] == pytest.approx(7.5)
    assert rel["rnn"]["enas"] == pytest.approx(7.5) and rel["rnn"]["autoshrink"] == 1.0
    text = sc.format_table(rows)
    assert "7.50x" in text and "6.7x (RNN)" in text and "7.2x (CNN)" in text
    out = tmp_path / "cost.json"
    sc.write_out(str(out), rows, {"gdas": "RuntimeError: boom"}, quick=True)
    data = json.loads(out.read_text())
    assert [set(r) >= {"method", "task", "hours", "device", "measured_fraction"}
            for r in data["rows"]] == [True] * 4
    assert data["rows"][1] == {"method": "enas-micro", "task": "cnn", "hours": 15.0,
                               "device": "cpu", "measured_fraction": 1e-5, "note": ""}
    assert data["not_measured"] == {"gdas": "RuntimeError: boom"} and data["quick"] is True


def test_bad_method_or_data_exits_2(sc, tmp_path, capsys):
    assert sc.main(["--methods", "nope", "--out", str(tmp_path / "x.json")]) in (2,)
    assert sc.main(["--ptb", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("error: ") for line in err)
