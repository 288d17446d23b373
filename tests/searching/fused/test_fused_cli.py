"""--fused in the CNN search CLI: off by default, a runtime flag, and a tiny search with it runs
its steps fused and lands where the unfused search does (float32: equal up to rounding)."""
import json

import pytest

from api.runs.atomic_io import read_jsonl
from searching.cnn.autoshrink_cnn import RUNTIME_FLAGS, build_parser, make_search
from searching.fused.executor import FusedExecutor
from searching.runner import run_search

TINY = ["--nodes", "4", "--max_steps", "2", "--epochs", "1", "--proxy_train", "100",
        "--proxy_val", "50", "--depth", "2", "--scale", "0.5", "1", "--pool", "1", "2",
        "--replicate", "1", "1", "--quiet", "--threads", "1", "--no_plots"]


def test_fused_is_off_by_default_and_a_runtime_flag():
    assert not build_parser().parse_args([]).fused
    assert "fused" in RUNTIME_FLAGS


@pytest.mark.slow
def test_tiny_search_with_fused(tmp_path, cifar_root):
    runs = {}
    for name, extra in (("plain", []), ("fused", ["--fused"])):
        args = build_parser().parse_args(["--model_root", str(tmp_path / name),
                                          "--data", str(cifar_root), *TINY, *extra])
        search = make_search(args)
        if extra:
            assert isinstance(search.executor, FusedExecutor)
        run_search(search, str(tmp_path / name))
        if extra:
            assert search.executor.groups and all(g == 2 for g in search.executor.groups)
        runs[name] = [r for r in read_jsonl(tmp_path / name / "candidates.jsonl")]
    plain, fused = runs["plain"], runs["fused"]
    assert [r["key"] for r in fused] == [r["key"] for r in plain]
    for a, b in zip(fused, plain):
        assert a["status"] == b["status"]
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=0.041)  # 2 of 50 images
    best = [json.loads((tmp_path / n / "graph-best.json").read_text())["mask"] for n in runs]
    assert best[0] == best[1]


def test_random_search_refuses_fused(tmp_path):
    from api.errors import UserError
    from searching.random_search.random_search import parse, random_search
    args, components, root_flag = parse(["cnn", "--model_root", str(tmp_path / "r"), "--fused"])
    with pytest.raises(UserError, match="--fused"):
        random_search(args, components, root_flag)
