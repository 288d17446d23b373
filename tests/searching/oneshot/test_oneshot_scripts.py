"""The GDAS seed's search scripts run as a user runs them (tiny sizes, EPOCHS=1)."""
import json
import os
import subprocess

import pytest

from tests.conftest import REPO

TINY = ["--train_size", "64", "--init_channels", "4", "--quiet", "--no_plots"]


def run(script, *args, env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", EPOCHS="1", **(env or {}))
    return subprocess.run(["bash", str(REPO / "scripts" / script), *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("script,args,space,method", [
    ("algos/GDAS.sh", ["cifar10", "-1", "--layers", "1"], "nas-bench-201", "gdas"),
    ("algos/DARTS-V1.sh", ["cifar10", "5", "--layers", "1"], "nas-bench-201", "darts-v1"),
    ("GDAS-search-NASNet-space.sh", ["cifar10", "1", "-1", "--layers", "3", "--batch_size",
                                     "16"], "darts", "gdas"),
])
def test_seed_scripts_search_and_write_their_outputs(tmp_path, cifar_root, script, args, space,
                                                     method):
    out = tmp_path / "run"
    proc = run(script, *args, *TINY, env={"DATA": str(cifar_root), "OUT": str(out)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["space"] == space and summary["method"] == method
    assert "searched architecture: " in proc.stdout
    assert (out / "arch-best.txt").read_text().strip() == summary["arch"]
    if args[1] == "-1":
        assert "seed: " in proc.stdout  # the random seed is printed


def test_seed_scripts_refuse_missing_arguments():
    for script in ("algos/GDAS.sh", "algos/DARTS-V2.sh", "GDAS-search-NASNet-space.sh"):
        proc = run(script)
        assert proc.returncode == 2 and proc.stderr.startswith("usage: ")
