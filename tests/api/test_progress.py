"""Progress in a log file is plain lines (no bar escape codes), with a projected time left once
the first unit is done; on a terminal it is a tqdm bar."""
import pytest

from api import progress as p


def test_plain_lines_where_stderr_is_no_terminal(monkeypatch, capsys):
    monkeypatch.delenv("AUTOSHRINK_PROGRESS", raising=False)
    bar = p.progress(total=4, desc="search", unit="cand", every=0)
    assert isinstance(bar, p.PlainProgress)  # pytest's stderr is no terminal
    bar.update(1)
    bar.set_postfix_str("val_acc=0.31")
    bar.update(3)
    bar.close()
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("search: 1/4 cand (25%), ") and "left" in lines[0]
    assert lines[1].startswith("search: 4/4 cand (100%)") and "[val_acc=0.31]" in lines[1]
    assert lines[-1] == lines[1]  # the finished bar's last line
    assert "\r" not in err and "\x1b" not in err


def test_plain_lines_are_occasional_and_silent_when_disabled(capsys):
    bar = p.PlainProgress(range(3), desc="epochs", every=3600)
    assert list(bar) == [0, 1, 2]
    bar.close()
    quiet = p.PlainProgress(total=2, disable=True, every=0)
    quiet.update(2)
    quiet.close()
    assert capsys.readouterr().err.count("\n") == 1  # only the finished line of the first


def test_an_unfinished_bar_says_nothing_when_it_closes(capsys):
    bar = p.PlainProgress(total=5, every=3600)
    bar.update(2)
    bar.close()  # an error stopped the run: no progress line under the error line
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("forced, cls", [("bar", "tqdm"), ("plain", "PlainProgress")])
def test_the_environment_can_force_either(monkeypatch, forced, cls):
    monkeypatch.setenv("AUTOSHRINK_PROGRESS", forced)
    bar = p.progress(total=1, disable=True)
    assert type(bar).__name__ == cls
    bar.close()


def test_durations_read_as_people_say_them():
    assert [p.duration(s) for s in (42, 200, 3900, 200000)] == \
        ["42 s", "3 min 20 s", "1 h 05 min", "2.3 days"]
