"""GDAS on the DARTS/NASNet space (searching/gdas/search.py --space darts): AutoDL's supernet
(pooling ops without BN, ``--track_running_stats``) and AutoDL's derivation rule for the
written cell."""
from __future__ import annotations

import re

import pytest
import torch

from api.spaces import get_space
from api.spaces.arch_io import load_arch
from api.spaces.darts.supernet import DartsSupernet, _top2_edges, _top2_pairs
from searching.darts import train_search as darts_cli
from searching.gdas import search as gdas_cli
from searching.oneshot.cli import supernet_kwargs
from tests.conftest import oneshot_history, run_cli_inprocess
from tests.searching.oneshot.test_oneshot import tiny

POOL_BN = re.compile(r"^cells\.\d+\._ops\.\d+\._ops\.[12]\.1\.")


@pytest.mark.parametrize("frc,track", [(False, 1), (True, 0)])
def test_search_builds_autodls_supernet_and_writes_autodls_cell(frc, track, cifar_root, tmp_path,
                                                                capsys, one_thread):
    save = tmp_path / "run"
    args = tiny(cifar_root, save, "--no_plots", "--track_running_stats", track,
                *(["--frc"] if frc else []))
    for flag, value in (("--space", "darts"), ("--layers", 3), ("--epochs", 1)):
        args[args.index(flag) + 1] = value
    code, _, err = run_cli_inprocess(gdas_cli.main, args, capsys)
    assert code == 0, err
    ckpt = torch.load(save / "checkpoint.pt", weights_only=True)
    expect = dict(C=4, layers=3, frc=frc, lastact=True, pool_bn=False)
    if not track:
        expect["track_running_stats"] = False
    assert ckpt["settings"]["supernet"] == expect
    names = list(ckpt["net"])
    assert not any(POOL_BN.match(n) for n in names)
    cell_stats = [n for n in names if n.startswith("cells.") and "running" in n]
    assert bool(cell_stats) == bool(track)
    assert "stem.1.running_mean" in names and "lastact.0.running_mean" in names
    # the written cell: AutoDL's rule on the final alphas (the same as the supernet's own)
    net = DartsSupernet(C=4, layers=3, frc=frc, lastact=True, pool_bn=False,
                        track_running_stats=bool(track))
    net.load_state_dict(ckpt["net"])
    found = load_arch(str(save / "arch-best")).value
    assert found == net.derive(rule="gdas")
    weights = torch.softmax(ckpt["net"]["alphas_normal"], -1).tolist()
    assert found.normal == _top2_pairs(weights, 4)
    assert found.normal != _top2_edges(weights, 4)  # DARTS's rule: another cell here
    assert oneshot_history(save)[-1]["arch"] == repr(found)


@pytest.mark.parametrize("cli", [gdas_cli, darts_cli])
def test_track_running_stats_reaches_the_darts_supernet(cli, tmp_path):
    """The flag is no longer ignored on the darts space (either search); the default leaves
    the recorded supernet settings as they were before the flag applied there."""
    for track in (0, 1):
        args = cli.build_parser().parse_args(["--space", "darts", "--save", str(tmp_path),
                                              "--track_running_stats", str(track),
                                              "--layers", "3", "--init_channels", "4"])
        kw = supernet_kwargs(args)
        assert ("track_running_stats" in kw) == (track == 0)
        net = get_space("darts").supernet(**kw)
        bns = [m for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert all(m.track_running_stats == bool(track) for m in bns)


def test_gdas_epochs_default_is_autodls_config():
    """AutoDL-Projects' configs/nas-benchmark/algos/GDAS.config and
    configs/search-opts/GDAS-NASNet-CIFAR.config both say 250 epochs."""
    assert gdas_cli.DEFAULTS["nas-bench-201"]["epochs"] == 250
    assert gdas_cli.DEFAULTS["darts"]["epochs"] == 250
