"""Every CLI, fed bad input, exits non-zero with one clear line and no traceback."""
import importlib
import pickle

import pytest

from tests.conftest import run_cli_inprocess, run_script


class Evil:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch PWNED')",))


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    (root / "torn.pkl").write_bytes(b"\x80\x04\x95garbage")
    (root / "notjson.json").write_text("{ not json")
    (root / "empty").mkdir()
    (root / "ptb").mkdir()
    for split in ("train", "valid", "test"):
        (root / "ptb" / f"{split}.txt").write_text("a b c\nb c a\n")
    (root / "ptb" / "valid.txt").write_text("")
    (root / "ptbok").mkdir()
    for split in ("train", "valid", "test"):
        (root / "ptbok" / f"{split}.txt").write_text("a b c\nb c a\n")
    return root


CASES = [
    # CNN search
    ("searching/cnn/autoshrink_cnn.py", ["--data", "{bad}/empty", "--dataset", "imagefolder"],
     "train/<class>/"),
    ("searching/cnn/autoshrink_cnn.py", ["--nodes", "1"], "--nodes"),
    ("searching/cnn/autoshrink_cnn.py", ["--max_steps", "0"], "--max_steps"),
    ("searching/cnn/autoshrink_cnn.py", ["--scale", "1", "--pool", "1", "2"], "one value per stage"),
    ("searching/cnn/autoshrink_cnn.py", ["--resume", "--model_root", "{bad}/empty"],
     "no search state"),
    ("searching/cnn/autoshrink_cnn.py", ["--epochs", "0"], "--epochs"),
    ("searching/cnn/autoshrink_cnn.py", ["--prob", "1.5"], "--prob"),
    # proxy maker
    ("searching/cnn/make_cifar10_proxy.py", ["--dataset", "imagefolder", "--data", "{bad}/empty",
                                             "--out", "{bad}/p.npz"], "train/<class>/"),
    ("searching/cnn/make_cifar10_proxy.py", ["--train", "0"], "--train"),
    # random search
    ("searching/random_search/random_search.py", ["svm"], "unknown search space"),
    ("searching/random_search/random_search.py", ["cnn", "--match_run", "{bad}/empty"], "--match_run"),
    # RNN search and its data tools
    ("searching/rnn/train.py", ["--data", "{bad}/nowhere", "--emb_path", "none"], "nowhere"),
    ("searching/rnn/train.py", ["--data", "{bad}/ptb", "--emb_path", "none"], "valid.txt"),
    ("searching/rnn/train.py", ["--data", "{bad}/ptbok", "--emb_path", "{bad}/missing.pkl"],
     "preprocess.py"),
    ("searching/rnn/train.py", ["--data", "{bad}/ptbok", "--emb_path", "{bad}/evil.pkl"],
     "preprocess.py"),
    ("searching/rnn/train.py", ["--nodes", "1", "--emb_path", "none"], "--nodes"),
    ("searching/rnn/train.py", ["--emsize", "100", "--nhidlast", "50", "--emb_path", "none"],
     "--nhidlast"),
    ("searching/rnn/preprocess.py", ["--data", "{bad}/nowhere", "--out", "{bad}/w.pkl"],
     "nowhere"),
    ("searching/rnn/make_penn_proxy.py", ["--ptb", "{bad}/nowhere", "--out", "{bad}/pp"],
     "nowhere"),
    ("searching/random_search/random_search.py", ["rnn", "--data", "{bad}/nowhere", "--emb_path", "none"],
     "nowhere"),
    # evaluation
    ("evaluation/cnn/build_imagenet.py", ["--graph_path", "{bad}/missing"], "not found"),
    ("evaluation/cnn/build_imagenet.py", ["--graph_path", "{bad}/evil.pkl"], "not a safe"),
    ("evaluation/cnn/build_imagenet.py", ["--graph_path", "{bad}/torn.pkl"], "is truncated"),
    ("evaluation/cnn/build_imagenet.py", ["--graph_path", "{bad}/notjson.json"], "JSON"),
    ("evaluation/cnn/train_imagenet.py", ["--graph_path", "shrinkcnn-a", "--data", "{bad}/empty",
                                          "--output", "{bad}/out-in"], "{bad}/empty"),
    ("evaluation/cnn/train_cifar.py", ["--graph_path", "shrinkcnn-a", "--data", "{bad}/empty",
                                       "--output", "{bad}/out-c"], "cifar-10-batches-py"),
    ("evaluation/cnn/validate.py", ["--checkpoint", "{bad}/missing.pt", "--data", "{bad}/empty"],
     "missing.pt"),
    ("evaluation/rnn/train.py", ["--graph_path", "shrinkcnn-a", "--data", "{bad}/ptbok",
                                 "--output", "{bad}/out-r"], "rnn"),
    ("evaluation/rnn/train.py", ["--data", "{bad}/nowhere", "--output", "{bad}/out-r2"],
     "nowhere"),
    ("evaluation/rnn/test.py", ["--checkpoint", "{bad}/missing.pt"], "missing.pt"),
]


# Scripts that no other test runs as ``python <script>``: their first case here does (their
# one subprocess smoke test: the __main__ block, imports from a fresh interpreter); every
# other case calls the script's main in-process, through the same error handling.
SMOKE_HERE = ("searching/rnn/preprocess.py", "searching/rnn/make_penn_proxy.py",
              "evaluation/cnn/build_imagenet.py", "evaluation/cnn/validate.py")
IN_SUBPROCESS = {next(i for i, c in enumerate(CASES) if c[0] == s) for s in SMOKE_HERE}


@pytest.mark.slow
@pytest.mark.parametrize("script,args,message,in_subprocess",
                         [(*c, i in IN_SUBPROCESS) for i, c in enumerate(CASES)],
                         ids=[f"{c[0].split('/')[-1]}:{' '.join(c[1])[:40]}"
                              + (":subprocess" if i in IN_SUBPROCESS else "")
                              for i, c in enumerate(CASES)])
def test_bad_input_gives_one_line(bad, tmp_path, capsys, script, args, message, in_subprocess):
    args = [a.format(bad=bad) for a in args]
    if script.endswith("autoshrink_cnn.py") and "--model_root" not in args:
        args += ["--model_root", str(tmp_path / "run")]
    if script == "searching/rnn/train.py" or args[:1] == ["rnn"]:
        args += ["--save", str(tmp_path / "run")]
    if in_subprocess:
        proc = run_script(script, *args, cwd=tmp_path, timeout=120)
        code, out, err = proc.returncode, proc.stdout, proc.stderr.strip()
    else:
        main = importlib.import_module(script[:-3].replace("/", ".")).main
        code, out, err = run_cli_inprocess(main, args, capsys, cwd=tmp_path)
        err = err.strip()
    assert code != 0, out
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error"), err
    assert message.format(bad=bad) in lines[0], lines[0]
    assert not (tmp_path / "PWNED").exists()


def test_in_process_runs_see_what_a_user_sees_and_leak_nothing(tmp_path, capsys):
    """run_cli_inprocess: the exit code and output of the real entry point (warnings
    included), and the process state it started with afterwards."""
    import os
    import sys
    import warnings

    import numpy as np
    import torch

    from api.errors import UserError

    def main(argv):
        assert sys.argv[1:] == argv and os.getcwd() == str(tmp_path)
        os.chdir("/")
        os.environ["AUTOSHRINK_LEAK"] = "1"
        torch.set_num_threads(torch.get_num_threads() + 1)
        torch.rand(1), np.random.rand()
        print("working")
        warnings.warn("a user sees this")
        raise UserError(f"bad {argv[0]}")

    before = (os.getcwd(), list(sys.argv), torch.get_num_threads(), torch.get_rng_state(),
              np.random.get_state()[1].copy())
    code, out, err = run_cli_inprocess(main, ["--flag"], capsys, cwd=tmp_path)
    assert code == 2 and out == "working\n"
    assert err.startswith("error: bad --flag\n") and "UserWarning: a user sees this" in err
    assert "AUTOSHRINK_LEAK" not in os.environ
    assert before[:3] == (os.getcwd(), sys.argv, torch.get_num_threads())
    assert torch.equal(before[3], torch.get_rng_state())
    assert (before[4] == np.random.get_state()[1]).all()
    assert run_cli_inprocess(lambda argv: None, [], capsys) == (0, "", "")
