"""One run-folder module for every search and training: the common flags with one seed
default, args.json, and the --resume rule (flags not given take the recorded values; given
ones that differ are refused unless --force)."""
import argparse
import importlib
import json

import pytest

from api.errors import UserError
from api.runs import run_folder as rf
from tests.conftest import SHARED_DATA, run_cli_inprocess

PARSERS = ["searching.cnn.autoshrink_cnn", "searching.rnn.train", "searching.darts.train_search",
           "searching.darts.train_search_rnn", "searching.gdas.search",
           "searching.nao.train_search", "searching.enas.config", "searching.nasbench201.search",
           "evaluation.cnn.train_cifar", "evaluation.cnn.train_imagenet", "evaluation.rnn.train"]


@pytest.mark.parametrize("module", PARSERS)
def test_every_cli_has_the_common_flags_with_one_seed_default(module):
    parser = importlib.import_module(module).build_parser()
    required = [a.option_strings[0] for a in parser._actions if a.required]
    args = parser.parse_args([x for flag in required for x in (flag, "x")])
    for flag in ("resume", "force", "quiet"):
        assert getattr(args, flag) is False, flag
    assert args.seed == rf.SEED_DEFAULT == 0
    if module != "searching.nasbench201.search":  # the table look-ups run no device
        assert args.device == "auto"


def _parser():
    p = argparse.ArgumentParser()
    p.add_argument("--save", default="out")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.1)
    rf.add_run_flags(p, "save")
    return p


def test_resume_takes_the_recorded_values_of_the_flags_not_given(tmp_path):
    p = _parser()
    first = p.parse_args(["--save", str(tmp_path), "--epochs", "2", "--lr", "0.5", "--seed", "7"])
    rf.write_args(tmp_path, first)
    assert json.loads((tmp_path / "args.json").read_text())["epochs"] == 2
    argv = ["--save", str(tmp_path), "--resume", "--lr", "0.9", "--device", "cpu"]
    args = rf.adopt_recorded_flags(p.parse_args(argv), tmp_path, rf.given_flags(p, argv), "save")
    # not given: recorded; given: kept as given (the run's settings check judges them)
    assert (args.epochs, args.seed, args.lr, args.device, args.resume) == (2, 7, 0.9, "cpu", True)
    # a caller without a command line (given None) changes nothing
    plain = p.parse_args(["--save", str(tmp_path), "--resume"])
    assert rf.adopt_recorded_flags(plain, tmp_path, None, "save").epochs == 5
    # and a folder without args.json changes nothing either
    empty = tmp_path / "empty"
    argv = ["--save", str(empty), "--resume"]
    assert rf.adopt_recorded_flags(p.parse_args(argv), empty, {"save", "resume"},
                                   "save").epochs == 5


def test_seed_minus_one_draws_once_and_a_resume_keeps_it(tmp_path, capsys):
    p = _parser()
    args = rf.resolve_seed(p.parse_args(["--seed", "-1"]), tmp_path)
    assert args.seed > 0 and f"seed: {args.seed}" in capsys.readouterr().out
    rf.write_args(tmp_path, args)
    again = rf.resolve_seed(p.parse_args(["--seed", "-1", "--resume"]), tmp_path)
    assert again.seed == args.seed


def test_changed_flags_are_refused_by_name_unless_forced(tmp_path):
    p = _parser()
    saved = vars(p.parse_args(["--epochs", "2"]))
    argv = ["--epochs", "3", "--resume", "--quiet"]
    with pytest.raises(UserError, match=r"--epochs 3 \(the run's: 2\) differs"):
        rf.resume_args(p.parse_args(argv), saved, rf.given_flags(p, argv), (), tmp_path, "save")
    forced, changed = rf.resume_args(p.parse_args(argv + ["--force"]), saved,
                                     rf.given_flags(p, argv + ["--force"]), (), tmp_path, "save")
    assert forced.epochs == 3 and forced.quiet and changed == ["--epochs 3 (the run's: 2)"]
    with pytest.raises(UserError, match="--resume: lr is 0.2 but the search in"):
        rf.refuse_changed_settings({"lr": 0.1}, {"lr": 0.2}, tmp_path)


def test_a_tabular_search_resumes_with_its_recorded_flags(tmp_path, capsys):
    """Through the CLI: `--resume` alone continues the search with the flags it was started
    with; a flag given with another value is refused in one line."""
    table = SHARED_DATA / "nasbench201" / "nb201.csv.gz"
    if not table.is_file():
        pytest.skip(f"NAS-Bench-201 table not present at {table}")
    from searching.nasbench201 import search as cli

    save = str(tmp_path / "rea")
    common = ["--save", save, "--benchmark_file", str(table), "--no_plots"]
    code, first, err = run_cli_inprocess(cli.main, common + [
        "--method", "rea", "--budget", "7", "--seed", "3", "--population", "4",
        "--sample_size", "2"], capsys)
    assert code == 0, err
    code, again, err = run_cli_inprocess(cli.main, common + ["--resume"], capsys)
    assert code == 0, err
    result = [line for line in first.splitlines() if line.startswith(("rea on", "arch-best"))]
    assert len(result) == 2 and result == [line for line in again.splitlines()
                                           if line.startswith(("rea on", "arch-best"))]
    assert "resumed: 7 of 7 queries journalled" in again
    code, _, err = run_cli_inprocess(cli.main, common + ["--resume", "--budget", "9"], capsys)
    assert code == 2 and err.count("\n") == 1 and "budget is 9" in err


def test_candidates_per_step_names_autoshrinks_k():
    from searching.cnn.autoshrink_cnn import build_parser

    assert build_parser().parse_args(["--candidates_per_step", "4"]).max_steps == 4
    assert build_parser().parse_args(["--max_steps", "4"]).max_steps == 4  # the original's


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_a_long_cpu_run_is_called_hours_or_days(device, capsys):
    import torch

    if device == "auto" and torch.cuda.is_available():
        pytest.skip("auto resolves to a GPU here")
    rf.Projection("epoch", device).after(600.0, 1, 10)
    out = capsys.readouterr().out
    assert out.startswith("projected: about 1 h 40 min more for the 10 epochs left")
    assert "on a CPU that is hours" in out
    rf.Projection("epoch", device).after(600.0, 1, 300)
    assert "on a CPU that is days" in capsys.readouterr().out
    rf.Projection("epoch", "cuda:0").after(600.0, 1, 10)
    assert "CPU" not in capsys.readouterr().out
