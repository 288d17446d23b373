"""A new user's slips, through the CLIs: a mistyped --device or --data is one line naming the
fix, before anything is created or downloaded, and never called a bug."""
import pytest

from tests.conftest import run_cli_inprocess, write_chain_corpus


def _cnn(capsys, tmp_path, *extra):
    from searching.cnn.autoshrink_cnn import main

    return run_cli_inprocess(main, ["--model_root", str(tmp_path / "run"), "--nodes", "3",
                                    "--max_steps", "1", "--epochs", "1", "--proxy_train", "40",
                                    "--proxy_val", "20", "--quiet", *extra], capsys)


def _rnn(capsys, tmp_path, *extra):
    from searching.rnn.train import main

    return run_cli_inprocess(main, ["--save", str(tmp_path / "run"), "--nodes", "3",
                                    "--epochs", "1", "--emb_path", "none", "--quiet", *extra],
                             capsys)


@pytest.mark.parametrize("search", [_cnn, _rnn])
@pytest.mark.parametrize("device, expected", [("cpuu", "is not a device"),
                                              ("cuda:99", "--device cuda:99: ")])
def test_a_mistyped_device_stops_before_any_folder(search, device, expected, tmp_path, capsys,
                                                   cifar_root):
    data = cifar_root if search is _cnn else write_chain_corpus(tmp_path / "text", 40, 10, 20,
                                                                 0.7)
    code, _, err = search(capsys, tmp_path, "--data", str(data), "--device", device)
    assert code == 2
    assert err.count("\n") == 1 and expected in err and "bug" not in err
    assert not (tmp_path / "run").exists()


def test_a_mistyped_data_folder_is_neither_created_nor_filled(tmp_path, capsys):
    code, _, err = _cnn(capsys, tmp_path, "--data", str(tmp_path / "dta"))
    assert code == 2 and err.count("\n") == 1
    assert "no such folder" in err and "--download" in err
    assert not (tmp_path / "dta").exists() and not (tmp_path / "run").exists()


def test_an_existing_folder_without_cifar_is_not_downloaded_into(tmp_path, capsys):
    from searching.darts.train_search import main

    (tmp_path / "mine").mkdir()
    code, _, err = run_cli_inprocess(main, ["--space", "nas-bench-201", "--data",
                                            str(tmp_path / "mine"), "--save",
                                            str(tmp_path / "run"), "--epochs", "1"], capsys)
    assert code == 2 and "cifar10 not found under" in err and "--download" in err
    assert list((tmp_path / "mine").iterdir()) == []


# ----------------------------------------------------------- where it writes, what it plans
def _nb201_table():
    from tests.conftest import SHARED_DATA

    table = SHARED_DATA / "nasbench201" / "nb201.csv.gz"
    if not table.is_file():
        pytest.skip(f"NAS-Bench-201 table not present at {table}")
    return table


def _search(name, tmp_path, cifar_root):
    """(main, argv) of a tiny search of each method, writing to tmp_path / 'run'."""
    save = tmp_path / "run"
    if name == "cnn":
        from searching.cnn.autoshrink_cnn import main
        return main, ["--model_root", save, "--data", cifar_root, "--nodes", "3", "--max_steps",
                      "1", "--epochs", "1", "--proxy_train", "40", "--proxy_val", "20",
                      "--no_plots", "--quiet"]
    if name == "rnn":
        from searching.rnn.train import main
        corpus = write_chain_corpus(tmp_path / "text", 40, 10, 20, 0.7)
        return main, ["--save", save, "--data", corpus, "--nodes", "3", "--epochs", "1",
                      "--emb_path", "none", "--emsize", "8", "--nhid", "8", "--nhidlast", "8",
                      "--batch_size", "4", "--eval_batch_size", "4", "--bptt", "5", "--max_steps", "1",
                      "--no_plots",
                      "--quiet"]
    if name in ("darts", "gdas"):
        from searching.darts.train_search import main as darts
        from searching.gdas.search import main as gdas
        from tests.searching.oneshot.test_oneshot import tiny
        return (darts if name == "darts" else gdas), [str(a) for a in tiny(cifar_root, save)]
    if name == "enas":
        from searching.enas.main import main
        from tests.searching.enas.test_enas_rnn import tiny
        corpus = write_chain_corpus(tmp_path / "ptb", 24, 12, vocab=12, follow=0.8)
        return main, [str(a) for a in tiny(corpus, save)]
    if name == "nao":
        from searching.nao.train_search import main
        from tests.searching.nao.test_nao_search import TINY
        return main, ["--data", str(cifar_root), "--save", str(save), *TINY]
    from searching.nasbench201.search import main
    return main, ["--method", "rea", "--budget", "5", "--benchmark_file", _nb201_table(),
                  "--save", save, "--no_plots"]


SEARCHES = ["cnn", "rnn", "darts", "gdas", "enas", "nao", "nb201"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SEARCHES)
def test_every_search_says_where_it_writes_and_what_it_plans_first(name, tmp_path, capsys,
                                                                   cifar_root, one_thread):
    main, argv = _search(name, tmp_path, cifar_root)
    code, out, err = run_cli_inprocess(main, [str(a) for a in argv], capsys)
    assert code == 0, err
    lines = [line for line in out.splitlines() if not line.startswith("seed: ")]
    assert lines[0] == f"output: {(tmp_path / 'run').resolve()}"
    assert lines[1].startswith("plan: ")
    if name != "nb201":  # look-ups take no time worth projecting
        assert any(line.startswith("projected: about ") for line in lines), out


# ----------------------------------------------------- Ctrl-C says truthfully what is kept
def _interrupt_on_call(monkeypatch, target, attr, n):
    """Raise KeyboardInterrupt at the n-th call of target.attr (as a Ctrl-C there would)."""
    original, calls = getattr(target, attr), {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(target, attr, wrapped)


@pytest.mark.slow
def test_ctrl_c_in_a_cell_search_keeps_its_candidates_and_resume_continues(
        tmp_path, capsys, cifar_root, monkeypatch, one_thread):
    from searching.cnn.proxy import CNNProxyEvaluator

    main, argv = _search("cnn", tmp_path, cifar_root)
    argv = [str(a) for a in argv] + ["--max_steps", "2"]  # two candidates in step 1
    with monkeypatch.context() as m:
        _interrupt_on_call(m, CNNProxyEvaluator, "evaluate", 2)
        code, _, err = run_cli_inprocess(main, argv, capsys)
    assert code == 130
    assert err.strip().endswith("1 candidate results are saved in "
                                f"{tmp_path / 'run'}; --resume keeps them and trains the "
                                "candidates that were in flight again")
    code, out, err = run_cli_inprocess(main, argv + ["--resume"], capsys)
    assert code == 0, err
    assert "resumed: 1 candidate results kept, step 1 in progress with 1 of 2" in out


@pytest.mark.slow
def test_ctrl_c_before_a_one_shot_checkpoint_says_there_is_none(tmp_path, capsys, cifar_root,
                                                                monkeypatch, one_thread):
    """The false promise a user met: after minutes of ENAS/GDAS work without a checkpoint,
    Ctrl-C said --resume would continue. It now says what is true, and --resume agrees."""
    from searching.gdas.method import GDAS

    main, argv = _search("gdas", tmp_path, cifar_root)
    argv = [str(a) for a in argv]
    with monkeypatch.context() as m:
        _interrupt_on_call(m, GDAS, "step", 2)
        code, _, err = run_cli_inprocess(main, argv, capsys)
    assert code == 130 and "no checkpoint was written" in err and "without --resume" in err
    code, _, err = run_cli_inprocess(main, argv + ["--resume"], capsys)
    assert code == 2 and "no search checkpoint" in err  # exactly what the message said
    with monkeypatch.context() as m:  # with a checkpoint after every step
        _interrupt_on_call(m, GDAS, "step", 2)
        code, _, err = run_cli_inprocess(main, argv + ["--checkpoint_minutes", "0"], capsys)
    assert code == 130 and "holds step 1 of epoch 1; --resume continues from there" in err
    code, out, err = run_cli_inprocess(main, argv + ["--checkpoint_minutes", "0", "--resume"],
                                       capsys)
    assert code == 0, err
    assert "resumed: 0 of 2 epochs done, step 1 of epoch 1" in out
