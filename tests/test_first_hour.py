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
