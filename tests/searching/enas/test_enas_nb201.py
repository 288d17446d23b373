"""ENAS on NAS-Bench-201 (searching/enas/search_nb201.py): the controller and the shared network
against AutoDL-Projects' own modules (``xautodl``: ``Controller``, ``TinyNetworkENAS``), the
controller phase against ``train_controller`` of AutoDL's ``exps/NAS-Bench-201-algos/ENAS.py``
(re-derived below), the baseline by hand, the lr schedule against AutoDL's
``CosineAnnealingLR``, the CLI's outputs, kill + --resume, bad input and the seed script."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from api.spaces.nasbench201.cell import Cell
from api.spaces.nasbench201.supernet import NASBench201Supernet
from searching.enas import search_nb201 as cli
from searching.enas.nb201_controller import NB201Controller
from searching.enas.nb201_method import EnasNB201, autodl_cosine_lr
from searching.enas.reinforce import PhaseBaseline
from searching.oneshot.trainer import OneShotConfig
from tests.conftest import (REPO, assert_same_oneshot_search, folder_files, oneshot_history,
                            run_cli_inprocess, run_script, run_search_until_death)

TOL = 1e-10
TABLE = REPO.parent / "shared" / "data" / "nasbench201" / "nb201.csv.gz"
OUTPUTS = ("arch-best", "arch-best.json", "arch-best.txt", "history.jsonl", "summary.json",
           "search.log", "args.json", "checkpoint.pt", "curves.png")

pytestmark = pytest.mark.usefixtures("one_thread")


def xautodl_or_skip():
    return pytest.importorskip("xautodl", reason="AutoDL-Projects' xautodl package is not "
                                                 "installed (pip install xautodl --no-deps)")


def tiny(data: Path, save: Path, *extra) -> list:
    return ["--space", "nas-bench-201", "--dataset", "cifar10", "--data", data, "--save", save,
            "--epochs", 2, "--batch_size", 16, "--train_size", 64, "--init_channels", 4,
            "--layers", 1, "--seed", 3, "--device", "cpu", "--quiet",
            "--controller_train_steps", 2, "--controller_num_aggregate", 2,
            "--controller_derive_samples", 2, "--controller_num_samples", 3, *extra]


# --------------------------------------------------------------------------- controller
def controller_pair(seed: int = 0):
    """(ours, AutoDL's) controllers in float64, ours holding AutoDL's state."""
    xautodl_or_skip()
    from xautodl.models.cell_searchs.search_model_enas_utils import Controller

    torch.manual_seed(seed)
    theirs = Controller(6, 5).double()
    ours = NB201Controller().double()
    ours.load_state_dict(theirs.state_dict())  # same names and shapes
    return ours, theirs


def test_controller_initialisation_equals_autodls():
    """The same global seed gives AutoDL's very initial weights (same parameters, same
    initialisation order: PyTorch's own, then U(-0.1, 0.1) on five of them)."""
    xautodl_or_skip()
    from xautodl.models.cell_searchs.search_model_enas_utils import Controller

    torch.manual_seed(11)
    theirs = Controller(6, 5)
    torch.manual_seed(11)
    ours = NB201Controller()
    a, b = theirs.state_dict(), ours.state_dict()
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert sum(p.numel() for p in ours.parameters()) == 17_253


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_controller_sample_log_prob_entropy_and_gradients_equal_autodls(seed):
    ours, theirs = controller_pair(seed)
    with torch.no_grad():  # logits away from the near-uniform start, so samples differ
        for p, q in zip(ours.parameters(), theirs.parameters()):
            p.mul_(8.0)
            q.mul_(8.0)
    for draw in range(3):
        torch.manual_seed(100 * seed + draw)
        lp_t, ent_t, arch_t = theirs()
        sample = ours.sample(torch.Generator().manual_seed(100 * seed + draw))
        assert sample.ops == arch_t
        assert abs(sample.log_prob.item() - lp_t.item()) < TOL
        assert abs(sample.entropy.item() - ent_t.item()) < TOL
        assert sample.arch == Cell.from_op_indices(arch_t)
        ours.zero_grad()
        theirs.zero_grad()
        (sample.log_prob + 0.3 * sample.entropy).backward()
        (lp_t + 0.3 * ent_t).backward()
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            assert torch.allclose(p.grad, q.grad, rtol=0, atol=TOL), name


def test_controller_samples_cover_the_space_reproducibly():
    torch.manual_seed(0)
    c = NB201Controller()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = [c.sample(g1).ops for _ in range(50)]
    b = [c.sample(g2).ops for _ in range(50)]
    assert a == b
    assert len({tuple(x) for x in a}) > 40 and {op for x in a for op in x} == set(range(5))


# --------------------------------------------------------------------------- shared network
def test_shared_network_logits_and_gradients_equal_tiny_network_enas():
    xautodl_or_skip()
    from xautodl.models.cell_operations import NAS_BENCH_201
    from xautodl.models.cell_searchs.search_model_enas import TinyNetworkENAS

    torch.manual_seed(4)
    theirs = TinyNetworkENAS(4, 1, 4, 10, NAS_BENCH_201, False, True).double()
    ours = NASBench201Supernet(10, C=4, N=1, affine=False, track_running_stats=True).double()
    src = theirs.state_dict()
    dst = {k: v for k, v in ours.state_dict().items() if not k.startswith("alpha")}
    assert len(src) == len(dst)
    for (_, a), (name, b) in zip(src.items(), dst.items()):
        assert a.shape == b.shape, name
    ours.load_state_dict({**{n: a.clone() for (_, a), n in zip(src.items(), dst)},
                          "alpha_cell": ours.alpha_cell.detach().clone()})
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (4,), generator=g)
    archs = [[3, 3, 3, 3, 3, 3], [0, 1, 2, 3, 4, 0], [4, 0, 2, 1, 0, 3]]
    for ops in archs:
        ours.zero_grad(set_to_none=True)
        theirs.zero_grad(set_to_none=True)
        theirs.update_arch(ops)
        _, ref = theirs(x)
        logits = ours(x, mode="fixed", arch=Cell.from_op_indices(ops))
        assert torch.allclose(logits, ref, rtol=0, atol=TOL)
        F.cross_entropy(logits, y).backward()
        F.cross_entropy(ref, y).backward()
        a, b = list(ours.weight_parameters()), list(theirs.parameters())
        assert len(a) == len(b)
        for k, (p, q) in enumerate(zip(a, b)):
            assert (p.grad is None) == (q.grad is None), k  # unsampled ops: no gradient
            if p.grad is not None:
                assert torch.allclose(p.grad, q.grad, rtol=0, atol=TOL), k
    for (name, a), b in zip(dst.items(), theirs.state_dict().values()):
        assert torch.allclose(ours.state_dict()[name].double(), b.double(), rtol=0,
                              atol=TOL), name  # running statistics moved alike


# --------------------------------------------------------------------------- REINFORCE
class StubNet(torch.nn.Module):
    """Stands in for the supernet in the controller phase: the batch's accuracy depends on
    the cell (``k`` of 8 images right, k = sum of the op indices mod 9)."""

    def forward(self, x, mode="fixed", arch=None):
        k = sum(arch.op_indices()) % 9
        logits = torch.zeros(len(x), 10, dtype=torch.float64)
        logits[:k, 0] = 1.0
        logits[k:, 1] = 1.0
        return logits


def stub_feed():
    x, y = torch.zeros(8, 3, 2, 2), torch.zeros(8, dtype=torch.long)
    return SimpleNamespace(val_iter=SimpleNamespace(next=lambda: (x, y)),
                           search=SimpleNamespace(_augment=lambda t, g: t), aug_gen=None)


def enas_method(controller, **kw) -> EnasNB201:
    m = EnasNB201(controller, **kw)
    m.config = OneShotConfig(space="nas-bench-201", epochs=2)
    m.c_optimizer = torch.optim.Adam(controller.parameters(), lr=m.hp["controller_lr"],
                                     betas=tuple(m.hp["controller_betas"]),
                                     eps=m.hp["controller_eps"])
    m.generator = torch.Generator().manual_seed(0)
    return m


def autodl_train_controller(controller, optimizer, net, baseline, steps, aggre, entropy_w,
                            bl_dec, clip=5.0):
    """``train_controller`` of AutoDL's ``exps/NAS-Bench-201-algos/ENAS.py``, its maths
    written out on AutoDL's ``Controller`` (draws from the global RNG): per sample the reward
    ``top1 + w * entropy``, the baseline ``top1`` while none exists, else
    ``B - (1 - dec) * (B - reward)`` from the phase's starting ``B``; loss
    ``-log_prob * (reward - baseline) / aggre`` accumulated; every ``aggre`` samples a
    gradient-norm clip at 5 and an Adam step. Returns the last baseline (a float)."""
    controller.zero_grad()
    for step in range(steps * aggre):
        log_prob, entropy, arch = controller()
        with torch.no_grad():
            cell = Cell.from_op_indices(arch)
            logits = net(torch.zeros(8, 3, 2, 2), arch=cell)
            val_top1 = (logits.argmax(1) == 0).double().mean().view(-1)
        reward = val_top1 + entropy_w * entropy
        b = val_top1 if baseline is None else baseline - (1 - bl_dec) * (baseline - reward)
        loss = -1 * log_prob * (reward - b)
        (loss / aggre).backward(retain_graph=True)
        if (step + 1) % aggre == 0:
            torch.nn.utils.clip_grad_norm_(controller.parameters(), clip)
            optimizer.step()
            controller.zero_grad()
    return b.item()


@pytest.mark.parametrize("entropy_w", [1e-4, 0.5])
def test_controller_phases_equal_autodls_train_controller(entropy_w):
    """Three controller phases (the first without a baseline, then with the carried one)
    leave the controller, its Adam state and the baseline as AutoDL's do, in float64."""
    ours, theirs = controller_pair(7)
    m = enas_method(ours, entropy_weight=entropy_w, train_steps=2, num_aggregate=3)
    t_opt = torch.optim.Adam(theirs.parameters(), lr=1e-3, betas=(0.0, 0.999), eps=1e-3)
    net, feed = StubNet(), stub_feed()
    baseline = None
    for phase in range(3):
        torch.manual_seed(50 + phase)
        m.generator.manual_seed(50 + phase)
        baseline = autodl_train_controller(theirs, t_opt, net, baseline, 2, 3, entropy_w, 0.99)
        record = m.train_controller(net, feed)
        assert abs(m.baseline.value - baseline) < TOL and record["baseline"] == m.baseline.value
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            assert torch.allclose(p, q, rtol=0, atol=TOL), (phase, name)
    assert any(not torch.equal(p, q) for p, q in zip(
        ours.parameters(), controller_pair(7)[0].parameters()))  # it learnt something


def test_phase_baseline_by_hand():
    b = PhaseBaseline(0.9)
    b.begin_phase()
    assert b(0.5, 0.52) == 0.5 and b(0.25, 0.26) == 0.25  # no baseline yet: the accuracy
    assert b.value == 0.25
    b.begin_phase()  # B = 0.25 for the whole phase
    assert abs(b(0.5, 0.6) - (0.25 - 0.1 * (0.25 - 0.6))) < 1e-15
    assert abs(b(0.0, 0.1) - (0.25 - 0.1 * (0.25 - 0.1))) < 1e-15
    assert abs(b.value - 0.235) < 1e-15
    s = PhaseBaseline(0.9, "sample")  # the moving average carried from sample to sample
    s.begin_phase()
    assert s(0.5, 0.52) == 0.5
    assert abs(s(0.25, 0.3) - (0.5 - 0.1 * (0.5 - 0.3))) < 1e-15
    assert abs(s(0.0, 0.1) - (0.48 - 0.1 * (0.48 - 0.1))) < 1e-15


def test_one_reinforce_step_by_hand():
    """A phase of one step of 2 samples, by hand: baseline = the accuracy (first phase), so
    each loss is -log p * w * H; with ``reward_grad`` 1 its gradient is
    -(w H) dlog p - w log p dH, averaged over the two samples, then clipped to norm 5 and
    Adam's first step (beta1 0): p - lr * g / (|g| + eps). With ``reward_grad`` 0 the
    gradient is -(w H) dlog p alone."""
    for reward_grad in (1, 0):
        torch.manual_seed(3)
        c = NB201Controller().double()
        start = [p.detach().clone() for p in c.parameters()]
        w = 0.5
        m = enas_method(c, entropy_weight=w, train_steps=1, num_aggregate=2,
                        reward_grad=bool(reward_grad))
        m.generator.manual_seed(9)
        m.train_controller(StubNet(), stub_feed())
        # by hand, on a copy with the same draws
        torch.manual_seed(3)
        ref = NB201Controller().double()
        g = torch.Generator().manual_seed(9)
        total = [torch.zeros_like(p) for p in ref.parameters()]
        for _ in range(2):
            s = ref.sample(g)
            ref.zero_grad()
            d_lp = torch.autograd.grad(s.log_prob, list(ref.parameters()), retain_graph=True)
            d_h = torch.autograd.grad(s.entropy, list(ref.parameters()))
            H, lp = s.entropy.item(), s.log_prob.item()
            for t, a, e in zip(total, d_lp, d_h):
                t += (-(w * H) * a - (w * lp * e if reward_grad else 0.0)) / 2
        norm = math.sqrt(sum(float((t ** 2).sum()) for t in total))
        scale = min(1.0, 5.0 / (norm + 1e-6))
        for p, p0, t in zip(c.parameters(), start, total):
            g1 = t * scale
            assert torch.allclose(p, p0 - 1e-3 * g1 / (g1.abs() + 1e-3), rtol=0, atol=1e-12)


def test_best_of_is_the_first_most_accurate_sample():
    """AutoDL's ``get_best_arch``: n samples, each on its own batch, ``np.argmax`` of the
    accuracies (the first of the highest)."""
    torch.manual_seed(2)
    c = NB201Controller()
    m = enas_method(c)
    m.generator.manual_seed(4)
    cell, acc = m.best_of(StubNet(), stub_feed(), 12)
    g = torch.Generator().manual_seed(4)
    cells = [c.sample(g).arch for _ in range(12)]
    accs = [(sum(x.op_indices()) % 9) / 8 for x in cells]
    k = int(np.argmax(accs))
    assert accs.count(max(accs)) > 1 and k == 0  # ties: the first one wins
    assert cell == cells[k] and acc == accs[k]
    assert len({x for x, a in zip(cells, accs) if a == max(accs)}) > 1


def test_lr_schedule_equals_autodls_cosine():
    xautodl_or_skip()
    import xautodl

    path = Path(xautodl.__file__).parent / "procedures" / "optimizers.py"
    spec = importlib.util.spec_from_file_location("autodl_optimizers", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # only this file: the package imports data libraries
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    sched = mod.CosineAnnealingLR(opt, 0, 310, 10, 0.0005)
    for epoch in (0, 1, 5, 9, 10, 11, 19, 20, 155, 309, 310):
        sched.update(epoch, 0.0)
        assert abs(autodl_cosine_lr(epoch, 0.05, 0.0005, 10, 310) - sched.get_lr()[0]) < 1e-15
    assert autodl_cosine_lr(0, 0.05, 0.0005, 10, 310) == 0.05
    assert abs(autodl_cosine_lr(10, 0.05, 0.0005, 10, 310) - 0.0005) < 1e-15
    assert abs(autodl_cosine_lr(20, 0.05, 0.0005, 10, 310) - 0.05) < 1e-15


def test_defaults_are_autodls():
    """ENAS.config and ENAS.sh: 310 epochs, batch 128, SGD 0.05 -> 0.0005 (T_max 10), wd
    2.5e-4, Nesterov; controller Adam 1e-3 (0, 0.999), eps 1e-3, 50 x 20 samples, entropy
    1e-4, decay 0.99, best of 100; LSTM 32 x 2, tanh 2.5, temperature 5."""
    args = cli.build_parser().parse_args(["--space", "nas-bench-201"])
    want = dict(learning_rate=0.05, learning_rate_min=0.0005, T_max=10, grad_clip=5.0,
                momentum=0.9, controller_lr=1e-3, controller_betas=[0.0, 0.999],
                controller_eps=1e-3, controller_train_steps=50, controller_num_aggregate=20,
                controller_entropy_weight=1e-4, controller_bl_dec=0.99,
                controller_num_samples=100, controller_derive_samples=10,
                controller_grad_clip=5.0, lstm_size=32, lstm_layers=2, tanh_constant=2.5,
                temperature=5.0, baseline_scope="phase", reward_grad=1, epoch_valid=1,
                track_running_stats=1)
    for key, value in want.items():
        assert getattr(args, key) == value, key
    assert cli.DEFAULTS["nas-bench-201"] == dict(init_channels=16, layers=5, batch_size=128,
                                                 epochs=310, weight_decay=2.5e-4)


# --------------------------------------------------------------------------- CLI
def test_search_writes_every_output_and_looks_up_the_table(cifar_root, tmp_path, capsys):
    from api.spaces import get_space

    save = tmp_path / "run"
    extra = ["--benchmark_file", TABLE] if TABLE.is_file() else []
    code, out, err = run_cli_inprocess(cli.main, tiny(cifar_root, save, *extra), capsys)
    assert code == 0, err
    for name in OUTPUTS:
        assert (save / name).is_file(), name
    text = (save / "arch-best.txt").read_text().strip()
    assert get_space("nas-bench-201").format(get_space("nas-bench-201").parse(text)) == text
    rows = oneshot_history(save)
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["arch"] == text
    for r in rows:
        for key in ("train_loss", "train_acc", "val_acc", "reward", "baseline", "entropy",
                    "controller_loss", "derive_acc", "derive_valid_acc", "best_valid_acc"):
            assert np.isfinite(r[key]), key
        assert r["edge_weights"] == {}
    assert "epoch_arch" in rows[-1] and "final_acc" in rows[-1] and "final_acc" not in rows[0]
    # the per-epoch lr is AutoDL's cosine with T_max 10
    assert rows[0]["lr"] == 0.05
    assert abs(rows[1]["lr"] - autodl_cosine_lr(1, 0.05, 0.0005, 10, 2)) < 1e-15
    summary = json.loads((save / "summary.json").read_text())
    assert summary["method"] == "enas" and summary["space"] == "nas-bench-201"
    assert summary["arch"] == text and summary["finished"] and summary["seed"] == 3
    assert f"searched architecture: {text}" in out
    ckpt = torch.load(save / "checkpoint.pt", weights_only=True)
    assert ckpt["method"] == "enas"
    assert ckpt["settings"]["method_settings"]["controller_params"] == 17_253
    if not TABLE.is_file():
        pytest.skip(f"the NAS-Bench-201 table is not present at {TABLE}: lookups unchecked")
    import csv
    import gzip

    with gzip.open(TABLE, "rt") as f:
        table = {r["arch"]: r for r in csv.DictReader(f)}
    want = table[text]
    assert summary["benchmark"] == {"cifar10": float(want["nats_cifar10_test_200ep"]),
                                    "cifar100": float(want["nb201_cifar100_test_200ep"]),
                                    "imagenet16": float(want["nb201_imagenet16_test_200ep"])}
    for row, bench in zip(rows, summary["benchmark_per_epoch"]):
        assert row["benchmark"] == bench
        assert bench["cifar10"] == float(table[row["arch"]]["nats_cifar10_test_200ep"])


def test_corrected_reinforce_flags_reach_the_method(cifar_root, tmp_path, capsys):
    save = tmp_path / "run"
    args = [*tiny(cifar_root, save, "--no_plots", "--baseline_scope", "sample",
                  "--reward_grad", 0, "--epoch_valid", 0), "--epochs", 1]
    code, _, err = run_cli_inprocess(cli.main, args, capsys)
    assert code == 0, err
    ckpt = torch.load(save / "checkpoint.pt", weights_only=True)
    hp = ckpt["settings"]["method_settings"]
    assert hp["baseline_scope"] == "sample" and hp["reward_grad"] is False
    assert ckpt["method_state"]["baseline"]["scope"] == "sample"
    row = oneshot_history(save)[0]
    assert "derive_valid_acc" not in row and "final_valid_acc" not in row
    assert "final_acc" in row and "epoch_arch" in row  # one epoch: also the last


def test_killed_and_resumed_equals_uninterrupted(cifar_root, tmp_path, capsys, monkeypatch):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*tiny(cifar_root, whole, "--no_plots"), "--epochs", 3]
    code, _, err = run_cli_inprocess(cli.main, args, capsys)
    assert code == 0, err
    cut_args = [*tiny(cifar_root, cut, "--no_plots", "--checkpoint_minutes", 0), "--epochs", 3]
    # between epochs: right after epoch 1's checkpoint
    files = run_search_until_death(cli.main, cut_args, "epoch:1", cut, capsys, monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    # mid-epoch (2 steps an epoch, a checkpoint after each): step 2 of the resumed run is
    # epoch 2's last step, so the death comes after its mid-epoch checkpoint of step 1
    files = run_search_until_death(cli.main, [*cut_args, "--resume"], "step:2", cut, capsys,
                                   monkeypatch)
    assert files["history.jsonl"].count(b"\n") == 1
    code, _, err = run_cli_inprocess(cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    ckpts = assert_same_oneshot_search(cut, whole)
    a, b = ckpts["cut"]["method_state"], ckpts["whole"]["method_state"]
    for key in a["controller"]:
        assert torch.equal(a["controller"][key], b["controller"][key]), key
    assert a["baseline"] == b["baseline"]
    # resuming a finished search changes nothing
    before = folder_files(cut)
    code, _, err = run_cli_inprocess(cli.main, [*cut_args, "--resume"], capsys)
    assert code == 0, err
    assert (cut / "arch-best.txt").read_bytes() == before["arch-best.txt"]
    assert oneshot_history(cut) == oneshot_history(whole)


@pytest.mark.parametrize("case", ["space", "arch_lr", "decay", "steps", "betas", "changed"])
def test_bad_input_one_line(case, cifar_root, tmp_path, capsys):
    args = tiny(cifar_root, tmp_path / "run", "--no_plots")
    extra = {"space": [], "arch_lr": ["--arch_learning_rate", "0.1"],
             "decay": ["--controller_bl_dec", "1"], "steps": ["--controller_num_aggregate", "0"],
             "betas": ["--controller_betas", "0", "1"],
             "changed": ["--resume", "--controller_lr", "0.01"]}[case]
    if case == "space":
        args[args.index("--space") + 1] = "darts"
    if case == "changed":  # a finished search resumed with another controller lr
        args[args.index("--epochs") + 1] = 1
        assert run_cli_inprocess(cli.main, args, capsys)[0] == 0
    code, out, err = run_cli_inprocess(cli.main, [*args, *extra], capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    expect = {"space": "unknown space", "arch_lr": "--controller_lr",
              "decay": "--controller_bl_dec", "steps": "--controller_num_aggregate",
              "betas": "--controller_betas", "changed": "method_settings"}[case]
    assert expect in lines[0]


@pytest.mark.slow
def test_cli_and_seed_script_smoke_subprocess(cifar_root, tmp_path):
    save = tmp_path / "run"
    args = [str(a) for a in tiny(cifar_root, save, "--no_plots")]
    args[args.index("--epochs") + 1] = "1"
    proc = run_script("searching/enas/search_nb201.py", *args)
    assert proc.returncode == 0, proc.stderr
    text = (save / "arch-best.txt").read_text().strip()
    assert f"searched architecture: {text}" in proc.stdout
    out = tmp_path / "script"
    env = dict(os.environ, OMP_NUM_THREADS="1", EPOCHS="1", DATA=str(cifar_root), OUT=str(out),
               BENCHMARK_FILE=str(tmp_path / "absent.csv.gz"))
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "algos" / "ENAS.sh"), "cifar10", "-1", "--layers", "1",
         "--train_size", "64", "--init_channels", "4", "--batch_size", "16", "--quiet",
         "--no_plots", "--controller_train_steps", "1", "--controller_num_aggregate", "2",
         "--controller_num_samples", "2"], env=env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "enas" and summary["space"] == "nas-bench-201"
    assert "seed: " in proc.stdout
    bad = subprocess.run(["bash", str(REPO / "scripts" / "algos" / "ENAS.sh")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("usage: ")
