"""The seed-style scripts of RSPS and SETN (scripts/algos/RANDOM-NAS.sh, SETN.sh, through
scripts/algos/oneshot.sh) run as a user runs them (tiny sizes, EPOCHS=1)."""
import json
import os
import subprocess

import pytest

from tests.conftest import REPO

TINY = ["--train_size", "64", "--init_channels", "4", "--layers", "1", "--select_num", "3",
        "--test_batch_size", "16", "--quiet", "--no_plots"]


def run(script, *args, env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", EPOCHS="1", **(env or {}))
    return subprocess.run(["bash", str(REPO / "scripts" / script), *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("script,method", [("algos/RANDOM-NAS.sh", "rsps"),
                                           ("algos/SETN.sh", "setn")])
def test_scripts_search_and_write_their_outputs(tmp_path, cifar_root, script, method):
    out = tmp_path / "run"
    proc = run(script, "cifar10", "-1", *TINY, env={"DATA": str(cifar_root), "OUT": str(out)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["space"] == "nas-bench-201" and summary["method"] == method
    assert (out / "arch-best.txt").read_text().strip() == summary["arch"]
    assert "seed: " in proc.stdout  # the random seed is printed


def test_scripts_refuse_missing_arguments_and_unknown_methods():
    for script in ("algos/RANDOM-NAS.sh", "algos/SETN.sh"):
        proc = run(script, "cifar10")
        assert proc.returncode == 2 and proc.stderr.startswith("usage: ")
    proc = run("algos/oneshot.sh", "nope", "nas-bench-201", "cifar10", "0")
    assert proc.returncode == 2 and "rsps, setn or enas" in proc.stderr
