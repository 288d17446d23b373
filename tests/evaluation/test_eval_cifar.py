"""CIFAR-10 final training at toy scale on CPU: learns, resumes exactly, validates, accepts a
search's graph-best, and refuses bad input in one line."""
import json
import pickle

import pytest

from api.runs.atomic_io import read_jsonl
from api.train.checkpoint import load_checkpoint
from api.spaces.dag.graph_io import save_graph
from tests.conftest import run_cli_inprocess, run_script, write_cifar10
from tests.api.train.test_eval_components import search_graph

TRAIN = "evaluation/cnn/train_cifar.py"
TINY = ["--scale", "0.25", "0.5", "--replicate", "1", "1", "--pool_size", "1", "2",
        "--stem_channels", "8", "--batch_size", "16", "--lr", "0.1", "--quiet"]


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    return write_cifar10(tmp_path_factory.mktemp("cifar"), per_batch=16, test=32)


pytestmark = pytest.mark.usefixtures("one_thread")


def train(*args):
    from evaluation.cnn.train_cifar import main

    main([str(a) for a in args])


def test_train_learns_and_resume_is_exact(tmp_path, tiny_cifar, monkeypatch, capsys):
    from api.train.trainer import Trainer

    common = ["--graph_path", "shrinkcnn-a", "--data", tiny_cifar, *TINY, "--epochs", 4,
              "--drop_path", "0.2"]
    straight = tmp_path / "straight"
    train(*common, "--output", straight)
    records = read_jsonl(straight / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    final = json.loads((straight / "final_metrics.json").read_text())
    assert final["steps"] == 4 * 5 and 0 <= final["top1"] <= 100

    resumed = tmp_path / "resumed"
    real_epoch = Trainer.train_epoch

    def crash_at_third(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_at_third)
    with pytest.raises(KeyboardInterrupt):
        train(*common, "--output", resumed)
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)
    train(*common, "--output", resumed, "--resume")
    assert "resumed from" in capsys.readouterr().out
    again = read_jsonl(resumed / "metrics.jsonl")
    assert [r["epoch"] for r in again] == [1, 2, 3, 4]
    for a, b in zip(records, again):  # same batches, augmentation, drop-path and weights
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["top1"] == b["top1"]


def test_death_between_log_and_checkpoint_and_changed_flags_on_resume(tmp_path, tiny_cifar,
                                                                      monkeypatch, capsys):
    """Killed after epoch 2's metrics line but before its last.pt (an injected death in the
    checkpoint writer, not a race): the resumed run redoes epoch 2 once, refuses a changed
    recipe flag by name unless --force, accepts runtime flags, and keeps the first args.json."""
    import api.train.trainer
    from api.errors import run_cli
    from evaluation.cnn.train_cifar import main

    out = tmp_path / "run"
    common = ["--graph_path", "shrinkcnn-a", "--data", tiny_cifar, *TINY, "--epochs", 3,
              "--output", out]
    real_save = api.train.trainer.save_checkpoint

    def die_at_second(path, state):
        if state["epoch"] == 2:
            raise KeyboardInterrupt
        real_save(path, state)

    monkeypatch.setattr(api.train.trainer, "save_checkpoint", die_at_second)
    with pytest.raises(KeyboardInterrupt):
        train(*common)
    monkeypatch.setattr(api.train.trainer, "save_checkpoint", real_save)
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    first_args = (out / "args.json").read_text()

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run_cli(main, [str(a) for a in [*common, "--resume", "--lr", "0.2"]])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--lr 0.2" in err and "--force" in err
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # nothing trained

    train(*common, "--resume", "--device", "cpu", "--eval_every", "1")  # runtime flags: free
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert (out / "args.json").read_text() == first_args

    forced = tmp_path / "forced"
    train(*common[:-1], forced, "--epochs", 1)
    train(*common[:-1], forced, "--epochs", 2, "--resume", "--lr", "0.2", "--force")
    text = capsys.readouterr().out
    assert "--force: continuing with --lr 0.2" in text and "--epochs 2" in text
    assert json.loads((forced / "args.json").read_text())["lr"] == 0.1  # the original
    state = load_checkpoint(forced / "last.pt")                          # what it now uses
    assert state["epoch"] == 2 and state["args"]["lr"] == 0.2


def test_nothing_is_selected_on_the_test_split(tmp_path, tiny_cifar, capsys):
    """CIFAR-10 has no validation split: the reported figure is the final epoch's test top-1
    and no checkpoint is chosen by test accuracy."""
    out = tmp_path / "run"
    train("--graph_path", "shrinkcnn-a", "--data", tiny_cifar, *TINY, "--epochs", 2,
          "--output", out)
    text = capsys.readouterr().out
    assert not (out / "best.pt").exists()
    final = json.loads((out / "final_metrics.json").read_text())
    assert not any(k.startswith("best") for k in final), final
    last = read_jsonl(out / "metrics.jsonl")[-1]
    assert final["top1"] == last["top1"] and final["epoch"] == 2
    assert f"final test top-1 {last['top1']:.2f}" in text and "best" not in text
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


def test_validate_on_cifar_test_split(tmp_path, tiny_cifar):
    from evaluation.cnn.validate import main as validate

    out = tmp_path / "run"
    train("--graph_path", "shrinkcnn-b", "--data", tiny_cifar, *TINY, "--epochs", 1,
          "--ema_decay", "0.9", "--output", out)
    validate(["--checkpoint", str(out / "last.pt"), "--data", str(tiny_cifar),
              "--out", str(tmp_path / "val.json")])
    val = json.loads((tmp_path / "val.json").read_text())
    final = json.loads((out / "final_metrics.json").read_text())
    assert val["dataset"] == "cifar10" and val["images"] == 32
    assert val["top1"] == pytest.approx(final["top1"])


def test_search_graph_best_in_the_cifar_network(tmp_path, tiny_cifar):
    save_graph(search_graph("swish"), str(tmp_path / "graph-best"), png=False)
    out = tmp_path / "run"
    train("--graph_path", tmp_path / "graph-best", "--data", tiny_cifar, *TINY, "--epochs", 1,
          "--output", out)
    net = load_checkpoint(out / "last.pt")["model_spec"]["network"]
    assert net["stem_stride"] == 1 and net["head_channels"] == 0  # CIFAR macro, not the proxy
    assert net["activation"] == "swish" and net["replicate"] == [1, 1]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing_graph", "damaged_data", "no_resume_state"])
def test_bad_input_is_one_line(tmp_path, tiny_cifar, case, capsys):
    data = tiny_cifar
    args = ["--graph_path", "shrinkcnn-a"]
    if case == "missing_graph":
        args = ["--graph_path", str(tmp_path / "graph-best")]
    elif case == "damaged_data":
        data = tmp_path / "broken"
        (data / "cifar-10-batches-py").mkdir(parents=True)
        for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                     "data_batch_5", "test_batch"]:
            (data / "cifar-10-batches-py" / name).write_bytes(pickle.dumps({"data": [1, 2]}))
    else:
        args += ["--resume"]
    argv = [*args, "--data", str(data), "--output", str(tmp_path / "out"), "--epochs", "1",
            "--quiet"]
    if case == "missing_graph":  # the script's one subprocess smoke test, as a user runs it
        proc = run_script(TRAIN, *argv)
        code, err = proc.returncode, proc.stderr
    else:
        from evaluation.cnn.train_cifar import main

        code, _, err = run_cli_inprocess(main, argv, capsys)
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_train_size_trains_on_a_balanced_subset(tmp_path, tiny_cifar, capsys):
    """--train_size: a quick trial on N training images (5 classes x 16 here: 80 images),
    class-balanced and seeded; the test split stays whole; out of range is one line."""
    train("--graph_path", "shrinkcnn-a", "--data", tiny_cifar, *TINY, "--epochs", 1,
          "--train_size", 32, "--output", tmp_path / "sub")
    final = json.loads((tmp_path / "sub" / "final_metrics.json").read_text())
    assert final["steps"] == 2  # 32 images in batches of 16
    out = capsys.readouterr().out
    assert "32 train / 32 test images" in out and "plan: 1 epoch of 2 steps" in out
    from evaluation.cnn.train_cifar import main

    code, _, err = run_cli_inprocess(main, [str(a) for a in (
        "--graph_path", "shrinkcnn-a", "--data", tiny_cifar, *TINY, "--epochs", 1,
        "--train_size", 10_000, "--output", tmp_path / "big")], capsys)
    assert code == 2 and "--train_size must be in 1.." in err
