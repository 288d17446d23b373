"""The CNN search as a user runs it: CLI outputs, determinism, kill -9 + --resume, bad input.

One subprocess per script (the CLI smoke test, the proxy maker) and one real kill -9; the
other CLI runs are in-process (conftest.run_cli_inprocess) and the other deaths deterministic
(conftest.die_at_every_kind_of_point)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from api.runs.atomic_io import read_jsonl
from tests.conftest import die_at_every_kind_of_point, kill_9_when, run_cli_inprocess, run_script
from api.spaces.autoshrink_cnn.network import NetworkSpec
from searching.cnn.autoshrink_cnn import build_parser, main, search_cnn

SCRIPT = "searching/cnn/autoshrink_cnn.py"
TINY = ["--nodes", "4", "--max_steps", "2", "--epochs", "1", "--proxy_train", "100",
        "--proxy_val", "50", "--depth", "2", "--scale", "0.5", "1", "--pool", "1", "2",
        "--replicate", "1", "1", "--quiet", "--threads", "1"]
# (--threads 1: on two shared cores a tiny search is 5-10x faster than with two threads)

OUTPUT_FILES = ["graph-best", "graph-best.json", "graph-best.png", "candidates.jsonl",
               "best_perf.log", "perf.log", "mean_acc.log", "best_acc.log", "mean_latency.log",
               "best_perf_log.png", "perf_log.png", "mean_acc.png", "best_acc.png",
               "mean_latency.png", "args.json", "state.json", "search.log"]


def tiny_args(root, data, *extra):
    return build_parser().parse_args(["--model_root", str(root), "--data", str(data), *TINY,
                                      *extra])


@pytest.mark.slow
def test_cli_writes_every_output(tmp_path, cifar_root):
    root = tmp_path / "run"
    proc = run_script(SCRIPT, "--model_root", str(root), "--data", str(cifar_root), *TINY,
                      check=True)
    assert "graph-best" in proc.stdout
    for name in OUTPUT_FILES:
        assert (root / name).is_file(), name
    assert any(p.name.startswith("graph-0.") for p in root.iterdir())
    recs = read_jsonl(root / "candidates.jsonl")
    for r in recs:
        assert {"step", "edge", "score", "accuracy", "macs", "params", "seconds",
                "status"} <= set(r)
        assert r["status"] in ("ok", "failed", "cached")
    # min(k, edges) candidates at every step
    history = json.loads((root / "state.json").read_text())["history"]
    before = [6] + [h["edges"] for h in history[:-1]]
    for h, e in zip(history, before):
        assert sum(r["step"] == h["step"] for r in recs) == min(2, e)
    # graph-best unpickles in a fresh Python from another directory
    code = ("import pickle; g = pickle.load(open('graph-best', 'rb')); "
            "print(g.mask.shape, len(g.ops_def), int(g.mask[__import__('numpy').tril_indices(4)].sum()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "(4, 4) 4 0"


def results_of(root):
    """Candidate records without wall-clock times, which legitimately differ between runs."""
    return [{k: v for k, v in r.items() if k != "seconds"}
            for r in read_jsonl(root / "candidates.jsonl")]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, cifar_root):
    root = tmp_path_factory.mktemp("reference")
    best = search_cnn(tiny_args(root, cifar_root, "--no_plots"))
    return root, best


@pytest.mark.slow
def test_same_seed_same_result(tmp_path, cifar_root, reference_run):
    ref, ref_best = reference_run
    best = search_cnn(tiny_args(tmp_path / "again", cifar_root, "--no_plots"))
    assert results_of(tmp_path / "again") == results_of(ref)
    assert best == ref_best and best.score == ref_best.score


def assert_same_search(root, ref):
    assert results_of(root) == results_of(ref)
    a = json.loads((root / "graph-best.json").read_text())
    b = json.loads((ref / "graph-best.json").read_text())
    assert a["mask"] == b["mask"] and a["meta"]["score"] == b["meta"]["score"]


def resume(args, capsys):
    code, _, err = run_cli_inprocess(main, [*args, "--resume"], capsys)
    assert code == 0, err


def without_threads(args):
    i = args.index("--threads")
    return args[:i] + args[i + 2:]


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted(tmp_path, cifar_root, reference_run, capsys):
    ref, _ = reference_run
    root = tmp_path / "killed"
    args = ["--model_root", str(root), "--data", str(cifar_root), *TINY, "--no_plots"]
    kill_9_when(SCRIPT, args, root / "candidates.jsonl", lines=3)
    resume(without_threads(args), capsys)  # the resumed search keeps the saved --threads
    assert_same_search(root, ref)


@pytest.mark.slow
def test_deaths_at_every_kind_of_point_then_resume_match_uninterrupted(
        tmp_path, cifar_root, reference_run, capsys, monkeypatch):
    """Killed (deterministically, by the search's fault-injection hook) mid-step, right after
    a journal append but before its state save, between steps and right after a step's plan:
    each resume continues the last, and the end is exactly the uninterrupted run."""
    ref, _ = reference_run
    root = tmp_path / "killed"
    args = ["--model_root", str(root), "--data", str(cifar_root), *TINY, "--no_plots"]
    die_at_every_kind_of_point(main, args, root, capsys, monkeypatch)
    resume(args, capsys)
    assert_same_search(root, ref)


BAD_INPUTS = [
    (["--data", "{tmp}/nowhere", "--dataset", "imagefolder"], "train/<class>/"),
    (["--scale", "1", "2", "--pool", "1", "2", "2", "--replicate", "1", "1", "1"],
     "one value per stage"),
    (["--nodes", "1"], "--nodes must be at least 2"),
    (["--max_steps", "0"], "--max_steps"),
    (["--depth", "4"], "--depth 4"),
    (["--resume", "--model_root", "{tmp}/empty"], "no search state"),
    (["--resume", "--model_root", "{tmp}/damaged"], "damaged"),
    (["--proxy_file", "{tmp}/missing.npz"], "make_cifar10_proxy.py"),
    (["--device", "cuda:0"], "CUDA"),
]


@pytest.mark.parametrize("flags,message", BAD_INPUTS)
def test_bad_input_one_line(tmp_path, cifar_root, flags, message, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "state.json").write_text("{ torn")
    flags = [f.format(tmp=tmp_path) for f in flags]
    if "--device" in flags:
        import torch
        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    args = ["--model_root", str(tmp_path / "run"), "--data", str(cifar_root), *TINY, *flags]
    code, _, err = run_cli_inprocess(main, args, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert "Traceback" not in err


def test_missing_cifar_names_the_fix(tmp_path):
    from api.errors import UserError
    from api.datasets import load_cifar

    with pytest.raises(UserError, match="cifar-10-batches-py"):
        load_cifar(str(tmp_path), download=False)


@pytest.mark.slow
def test_make_cifar10_proxy_cli(tmp_path, cifar_root, capsys):
    out = tmp_path / "proxy.npz"
    run_script("searching/cnn/make_cifar10_proxy.py", "--data", str(cifar_root), "--out",
               str(out), "--train", "100", "--val", "50", "--seed", "1", check=True)
    with np.load(out) as z:
        assert z["train_x"].shape == (100, 3, 32, 32) and len(z["val_y"]) == 50
        counts = np.bincount(z["train_y"], minlength=10)
    assert counts.max() - counts.min() <= 1
    root = tmp_path / "run"
    # a search reads the proxy file (two steps of it are enough to show that)
    code, _, err = run_cli_inprocess(main, ["--model_root", str(root), "--proxy_file", str(out),
                                            *TINY, "--keep_fraction", "0.7", "--no_plots"],
                                     capsys)
    assert code == 0, err
    assert (root / "graph-best").is_file()
    assert json.loads((root / "state.json").read_text())["step"] == 2


def test_speed_flags_are_runtime_settings():
    """bf16, layouts and autotuning change speed, not what a search is: they reach the proxy
    config, stay out of the evaluator's identity, and pick the layout per device."""
    import torch

    from searching.cnn.proxy import CNNProxyEvaluator, CNNProxyTrainConfig
    from searching.cnn.autoshrink_cnn import RUNTIME_FLAGS

    args = build_parser().parse_args(["--cuda_bf16", "--cuda_channels_last",
                                      "--no_cudnn_benchmark"])
    assert {"cuda_bf16", "cuda_channels_last", "no_cudnn_benchmark"} <= RUNTIME_FLAGS
    assert args.cuda_bf16 and args.cuda_channels_last and args.no_cudnn_benchmark
    default = CNNProxyTrainConfig()
    assert not default.cuda_bf16 and default.cudnn_benchmark
    assert default.use_channels_last(torch.device("cpu"))
    assert not default.use_channels_last(torch.device("cuda"))
    fast = CNNProxyTrainConfig(cuda_bf16=True, cuda_channels_last=True, cudnn_benchmark=False)
    assert fast.use_channels_last(torch.device("cuda"))
    from api.datasets import ProxyData

    x, y = np.zeros((4, 3, 32, 32), np.uint8), np.arange(4) % 2
    data = ProxyData(x, y, x, y, 2)  # describe() fingerprints the data
    ident = [CNNProxyEvaluator(data, NetworkSpec(), c).describe() for c in (default, fast)]
    assert ident[0] == ident[1] and "cuda_bf16" not in ident[0]["train"]


def test_accuracy_checks_are_skipped_only_where_they_cannot_trigger():
    """The proxy reads its running train accuracy (a host sync on CUDA) only once passing
    the threshold has become possible, so it stops at the same batch as checking always."""
    from searching.cnn.proxy import next_accuracy_check

    rng = np.random.default_rng(0)
    for _ in range(400):
        threshold = float(rng.choice([0.98, 0.9, 0.5, 0.0, 0.999]))
        seen = int(rng.integers(1, 6000))
        correct = int(rng.integers(0, seen + 1))
        if correct > threshold * seen:
            continue  # the caller stops here
        at = next_accuracy_check(seen, correct, threshold)
        assert at >= seen
        for n in range(0, min(int(at) - seen, 6000)):  # every skipped point: no trigger,
            assert correct + n <= threshold * (seen + n)  # even if all n new images are right
    assert next_accuracy_check(128, 15, 0.98) > 5000  # a fresh candidate: no sync this epoch
    assert next_accuracy_check(10, 3, 1.0) == float("inf")
