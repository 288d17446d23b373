"""The random-search baseline: same machinery, budget-matched, resumable, deterministic."""
import pytest

from api.runs.atomic_io import read_jsonl
from tests.conftest import run_cli_inprocess, run_script
from searching.random_search.strategy import RandomConfig, RandomSearch, autoshrink_budget, count_trainings
from tests.searching.autoshrink.test_shrink import FakeEvaluator, initial, journal, run as run_shrink
from api.search.objectives import CNNObjective


def run_random(root, budget=12, k=5, seed=0, resume=False, evaluator=None):
    search = RandomSearch(str(root), evaluator or FakeEvaluator(), CNNObjective(),
                          RandomConfig(k=k, budget=budget, seed=seed), plots=False,
                          progress=False)
    search.resume() if resume else search.start(initial)
    return search, search.run()


def test_budget_matches_autoshrink(tmp_path):
    assert autoshrink_budget(28, 10, 0.0) == 235 and autoshrink_budget(15, 10, 0.25) == 95
    search, _ = run_shrink(tmp_path / "shrink", k=3)
    trained = count_trainings(str(tmp_path / "shrink"))
    rs, best = run_random(tmp_path / "random", budget=trained, k=3)
    recs = read_jsonl(tmp_path / "random" / "candidates.jsonl")
    assert len(recs) == trained and len({r["hash"] for r in recs}) == trained
    assert best.score == max(r["score"] for r in recs)
    assert [h["x"] for h in rs.state["history"]][-1] == trained


def test_random_search_is_seeded_and_resumable(tmp_path):
    _, a = run_random(tmp_path / "a", seed=3)
    _, b = run_random(tmp_path / "b", seed=3)
    assert a == b and journal(tmp_path / "a") == journal(tmp_path / "b")
    with pytest.raises(SystemExit):
        run_random(tmp_path / "c", seed=3, evaluator=FakeEvaluator(crash_at=7))
    _, c = run_random(tmp_path / "c", seed=3, resume=True)
    assert c == a and journal(tmp_path / "c") == journal(tmp_path / "a")


@pytest.mark.slow
def test_random_search_cli(tmp_path, cifar_root, capsys):
    """The script's one subprocess run; its bad input runs in-process."""
    from searching.random_search.random_search import main

    root = tmp_path / "rs"
    proc = run_script("searching/random_search/random_search.py", "cnn", "--model_root", str(root),
                      "--data", str(cifar_root), "--nodes", "3", "--max_steps", "2",
                      "--epochs", "1", "--proxy_train", "60", "--proxy_val", "30", "--depth",
                      "1", "--scale", "0.5", "--pool", "1", "--replicate", "1", "--quiet",
                      "--no_plots", "--threads", "1", check=True)
    assert "budget 5" in proc.stdout  # 3 edges, k=2: 2 + 2 + 1
    assert len(read_jsonl(root / "candidates.jsonl")) == 5 and (root / "graph-best").is_file()
    code, _, err = run_cli_inprocess(main, ["cnn", "--model_root", str(tmp_path / "x"), "--data",
                                            str(cifar_root), "--match_run", str(tmp_path / "none")],
                                     capsys)
    assert code == 2 and "--match_run" in err


def test_compare_harness_cnn(tmp_path, cifar_root, capsys):
    from searching.compare import main as compare

    out = tmp_path / "cmp"
    compare(["cnn", "--seeds", "0", "--out", str(out), "--data", str(cifar_root),
             "--retrain_epochs", "1", "--retrain_train", "100", "--retrain_val", "50", "--",
             "--nodes", "3", "--max_steps", "2", "--epochs", "1", "--proxy_train", "60",
             "--proxy_val", "30", "--depth", "1", "--scale", "0.5", "--pool", "1",
             "--replicate", "1", "--threads", "1"])
    table = (out / "table.md").read_text()
    assert "| autoshrink |" in table and "| random |" in table
    assert (out / "compare.png").stat().st_size > 1000
    auto = count_trainings(str(out / "autoshrink-s0"))
    assert count_trainings(str(out / "random-s0")) == auto  # equal budget
    assert "retrained accuracy" in capsys.readouterr().out
