"""The paper-table scripts: the complexity table runs on CPU in seconds and matches the paper;
the ImageNet and search scripts parse and only use flags their CLIs know."""
import os
import re
import subprocess

import pytest

from tests.conftest import REPO
from evaluation.complexity_table import complexity_rows

SCRIPTS = REPO / "scripts"


@pytest.mark.slow
def test_table_complexity_script_prints_paper_figures():
    # one CPU thread: counting is a forward pass at 224x224, 20x slower with two threads
    # contending for two shared cores, and the figures do not depend on it
    proc = subprocess.run(["bash", str(SCRIPTS / "table_complexity.sh")], cwd="/",
                          env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in proc.stdout.splitlines() if line.startswith("| Shrink")}
    assert rows["ShrinkCNN-A (ReLU)"][:4] == ["3.601", "3.6", "383.7", "384"]
    assert rows["ShrinkCNN-B (Swish)"][:4] == ["3.601", "3.6", "383.7", "384"]
    assert rows["ShrinkRNN"][:2] == ["23.001", "24"]


def test_complexity_rows_within_tolerance_of_paper(one_thread):
    for row in complexity_rows():
        assert abs(row["params_m"] - row["paper_params_m"]) / row["paper_params_m"] < 0.05
        if row["paper_macs_m"]:
            assert abs(row["macs_m"] - row["paper_macs_m"]) / row["paper_macs_m"] < 0.005


def _flags_after(text, cli):
    """The --flags of the (backslash-continued) command that runs ``cli``."""
    command = re.search(re.escape(cli) + r"((?:[^\n]*\\\n)*[^\n]*)", text).group(1)
    return set(re.findall(r"(--[a-z_]+)", command))


@pytest.mark.slow
@pytest.mark.parametrize("script", ["shrinkcnn_a_imagenet.sh", "shrinkcnn_b_imagenet.sh",
                                    "search_cnn.sh", "table_complexity.sh"])
def test_scripts_parse_and_use_known_flags(script):
    from evaluation.cnn import build_imagenet, train_imagenet, validate
    from searching.cnn import autoshrink_cnn

    path = SCRIPTS / script
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert "# Reproduces" in text or script == "search_cnn.sh"
    if "imagenet" in script:  # the A and B rows run one shared script with their variant
        assert "shrinkcnn_imagenet.sh" in text
        text += (SCRIPTS / "shrinkcnn_imagenet.sh").read_text()
    clis = {"build_imagenet.py": build_imagenet, "train_imagenet.py": train_imagenet,
            "validate.py": validate, "autoshrink_cnn.py": autoshrink_cnn}
    for name, module in clis.items():
        if name in text:
            known = set(module.build_parser()._option_string_actions)
            assert _flags_after(text, name) <= known, name
    if "imagenet" in script:
        assert "torchrun --standalone --nproc_per_node" in text and "IMAGENET" in text
