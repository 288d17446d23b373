"""Final ShrinkRNN training and testing (evaluation/rnn) on a tiny PTB-format corpus, CPU."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from api.runs.atomic_io import append_jsonl, read_jsonl
from api.errors import run_cli
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.graph_io import save_graph
from evaluation.rnn.lm import forward_raw, sample_seq_len, should_switch_to_asgd
from evaluation.rnn.test import main as rnn_test_main
from evaluation.rnn.train import main as train_main
from api.spaces.autoshrink_rnn.model import RNNModel
from tests.conftest import run_script, write_chain_corpus

# Small dropouts so that 4 tiny epochs show the loss falling; the rest is the real recipe.
TINY = ["--emsize", "16", "--bptt", "10", "--batch_size", "4", "--device", "cpu", "--quiet",
        "--dropout", "0.1", "--dropouth", "0.1", "--dropoutx", "0.1", "--dropouti", "0.1",
        "--asgd_epoch", "2"]
VOLATILE = ("seconds", "tokens_per_s")  # wall-clock figures differ between runs


def write_corpus(root: Path, lines: int = 150, seed: int = 0) -> Path:
    """Ten words, each usually followed by the next: a pattern a tiny LM learns in an epoch."""
    return write_chain_corpus(root, lines, eval_lines=30, vocab=10, follow=0.9, seed=seed)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("ptb"))


@pytest.fixture(autouse=True)
def one_thread_everywhere(monkeypatch, one_thread):
    """One thread here and in the subprocesses (they inherit it): fastest and deterministic."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def full_run(corpus, tmp_path_factory) -> Path:
    """An uninterrupted 4-epoch run as a user starts it (subprocess); ASGD after epoch 2."""
    out = tmp_path_factory.mktemp("runs") / "full"
    run_script("evaluation/rnn/train.py", "--data", str(corpus), "--output", str(out),
               "--epochs", "4", *TINY, check=True)
    return out


def stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def test_forward_raw_is_the_models_forward():
    """evaluation/rnn composes RNNModel's parts itself (for TAR): it must stay identical."""
    graph = CellGraph(np.triu(np.ones((4, 4), dtype=int), 1), ["input", "tanh", "relu",
                                                                "identity"], space="rnn")
    torch.manual_seed(0)
    model = RNNModel(graph, 12, 8, 8, dropout=0.3, dropouth=0.2, dropoutx=0.3, dropouti=0.2,
                     dropoute=0.1).train()
    inputs, hidden = torch.randint(0, 12, (5, 3)), torch.zeros(3, 8)
    ref, ref_h = model(inputs, hidden, torch.Generator().manual_seed(7))
    out, raw, h = forward_raw(model, inputs, hidden, torch.Generator().manual_seed(7))
    assert torch.equal(out, ref) and torch.equal(h, ref_h) and torch.equal(raw[-1], h)


def test_nonmono_rule_and_random_length():
    hist = [5.0, 3.0, 3.1, 3.2, 3.3, 3.4, 3.5]  # the best (3.0) is older than the last 5
    assert not should_switch_to_asgd(hist[:5], 9.0, 5)  # not enough history
    assert should_switch_to_asgd(hist, 3.6, 5)          # worse than the best of the old ones
    assert not should_switch_to_asgd(hist, 2.9, 5)      # a new best
    assert not should_switch_to_asgd(hist[:6], 3.6, 5)  # only 5.0 is old enough
    assert should_switch_to_asgd(hist, 3.05, 0) and not should_switch_to_asgd([], 9.0, 0)
    gen = torch.Generator().manual_seed(0)
    lens = [sample_seq_len(gen, 35) for _ in range(2000)]
    assert min(lens) >= 5 and max(lens) <= 55 and 33 < np.mean(lens) < 35
    again = torch.Generator().manual_seed(0)
    assert [sample_seq_len(again, 35) for _ in range(20)] == lens[:20]


@pytest.mark.slow
def test_train_end_to_end_then_test(full_run, tmp_path):
    records = read_jsonl(full_run / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert [r["optimizer"] for r in records] == ["sgd", "sgd", "asgd", "asgd"]
    assert all(r["tokens_per_s"] > 0 and math.isfinite(r["val_ppl"]) for r in records)
    final = json.loads((full_run / "final_metrics.json").read_text())
    assert final["epochs"] == 4 and final["asgd_epoch"] == 2 and final["params"] > 0
    assert final["best_val_ppl"] == min(r["val_ppl"] for r in records)
    out = tmp_path / "test.json"
    proc = run_script("evaluation/rnn/test.py", "--checkpoint", str(full_run), "--quiet",
                      "--device", "cpu", "--out", str(out), check=True)
    assert "test ppl" in proc.stdout
    res = json.loads(out.read_text())
    assert res["test"]["batch_size"] == 1 and math.isfinite(res["test"]["ppl"])
    assert res["valid"]["ppl"] == pytest.approx(final["best_val_ppl"], rel=1e-6)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(corpus, tmp_path):
    """Stopped after epoch 3 (ASGD on since epoch 2), resumed: the same epochs as one run.
    Both in this process: the same thread setup, so the figures must be equal, not close."""
    full = tmp_path / "full"
    train_main(["--data", str(corpus), "--output", str(full), "--epochs", "4", *TINY])
    out = tmp_path / "cut"
    train_main(["--data", str(corpus), "--output", str(out), "--epochs", "3", *TINY])
    # a crash after logging epoch 4 but before its checkpoint: the record must be redone
    append_jsonl(out / "metrics.jsonl", {"epoch": 4, "train_loss": -1.0})
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["state"]["optimizer_kind"] == "asgd" and ckpt["optimizer"]["state"]
    train_main(["--output", str(out), "--resume", "--epochs", "4"])
    assert stable(read_jsonl(out / "metrics.jsonl")) == stable(
        read_jsonl(full / "metrics.jsonl"))
    assert [r["optimizer"] for r in read_jsonl(out / "metrics.jsonl")] == ["sgd", "sgd",
                                                                           "asgd", "asgd"]


def test_search_graph_best_is_accepted(corpus, tmp_path):
    """A search's graph-best (space rnn, its proxy settings) goes straight to the trainer."""
    mask = np.zeros((4, 4), dtype=int)
    mask[0, 1] = mask[0, 2] = mask[1, 3] = mask[2, 3] = 1
    graph = CellGraph(mask, ["input", "relu", "tanh", "identity"], space="rnn",
                      settings={"space": "rnn", "emsize": 100, "nhid": 100, "nhidlast": 100})
    save_graph(graph, str(tmp_path / "graph-best"), png=False)
    out = tmp_path / "run"
    train_main(["--graph_path", str(tmp_path / "graph-best"), "--data", str(corpus),
                "--output", str(out), "--epochs", "1", *TINY])
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["graph"]["mask"] == mask.tolist() and math.isfinite(final["best_val_ppl"])


def test_bad_input_is_one_line_exit_2(corpus, tmp_path, capsys):
    done = tmp_path / "done"
    done.mkdir()
    (done / "last.pt").write_bytes(b"x")
    cases = [
        (train_main, ["--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "a")],
         "corpus folder not found"),
        (train_main, ["--graph_path", "shrinkcnn-a", "--data", str(corpus),
                      "--output", str(tmp_path / "b")], "needs an RNN cell"),
        (train_main, ["--data", str(corpus), "--output", str(tmp_path / "c"), "--resume"],
         "no checkpoint"),
        (train_main, ["--data", str(corpus), "--output", str(done)], "already holds a run"),
        (train_main, ["--data", str(corpus), "--output", str(tmp_path / "d"),
                      "--dropout", "1.5"], "--dropout must be in [0, 1)"),
        (rnn_test_main, ["--checkpoint", str(tmp_path / "missing.pt")], "not found"),
        (rnn_test_main, ["--checkpoint", str(tmp_path)], "no best.pt"),
    ]
    for main, argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            run_cli(main, argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2, argv
        assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
@pytest.mark.parametrize("preset,space,bias", [("darts-ptb", "darts-rnn", True),
                                               ("enas-ptb", "enas-rnn", False)])
def test_darts_and_enas_cells_train_resume_and_test(preset, space, bias, corpus, tmp_path):
    """The zoo's PTB cells go through the same trainer: the space's network (tied, DARTS's
    dropouts, ENAS without a decoder bias), a checkpoint that rebuilds it for --resume and
    test.py, and resumed epochs equal to uninterrupted ones."""
    from api.spaces import get_space
    from api.spaces.arch_io import load_arch

    full = tmp_path / "full"
    train_main(["--arch", preset, "--data", str(corpus), "--output", str(full),
                "--epochs", "2", *TINY])
    cut = tmp_path / "cut"
    train_main(["--arch", preset, "--data", str(corpus), "--output", str(cut),
                "--epochs", "1", *TINY])
    train_main(["--output", str(cut), "--resume", "--epochs", "2"])
    assert stable(read_jsonl(cut / "metrics.jsonl")) == stable(
        read_jsonl(full / "metrics.jsonl"))

    final = json.loads((full / "final_metrics.json").read_text())
    arch = load_arch(preset)
    assert final["space"] == space and final["text"] == arch.text and "graph" not in final
    assert final["params"] == get_space(space).count(arch.value, ntokens=final["ntokens"],
                                                     emsize=16)[0]
    spec = torch.load(full / "best.pt", weights_only=True)["model_spec"]
    assert spec["space"] == space and spec["decoder_bias"] is bias
    assert spec["arch"] == get_space(space).to_json(arch.value)
    assert spec["emsize"] == spec["nhid"] == 16 and spec["dropouts"]["dropout"] == 0.1

    out = tmp_path / "test.json"
    rnn_test_main(["--checkpoint", str(full), "--quiet", "--device", "cpu", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["test"]["batch_size"] == 1 and math.isfinite(res["test"]["ppl"])
    assert res["valid"]["ppl"] == pytest.approx(final["best_val_ppl"], rel=1e-6)


def test_arch_takes_cell_strings_and_refuses_cnn_cells(corpus, tmp_path, capsys):
    """--arch also takes a space's string (here an ENAS list); a CNN cell is one line, exit 2."""
    out = tmp_path / "enas"
    train_main(["--arch", "0 0 1 1 2", "--data", str(corpus), "--output", str(out),
                "--epochs", "1", *TINY])
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["space"] == "enas-rnn" and final["text"] == "0 0 1 1 2"
    for arch in ("darts-v2", "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|"
                             "skip_connect~2|"):
        with pytest.raises(SystemExit) as exc:
            run_cli(train_main, ["--arch", arch, "--data", str(corpus),
                                 "--output", str(tmp_path / "cnn")])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "needs an RNN cell" in err
        assert len(err.strip().splitlines()) == 1, err
