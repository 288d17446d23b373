"""``--arch`` takes a space string of any length (a DARTS genotype is longer than a file name may
be), and a damaged or wrong file is named for what is wrong with it: truncated, empty, another
kind of file, or text that holds no architecture. Checked through ``evaluation/model_info.py``."""
import pickle

import pytest

from api.spaces import get_space, space_names, zoo
from tests.conftest import run_cli_inprocess

NB201 = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
MACRO = " ".join(" ".join([str(k % 6)] + [str((k + i) % 2) for i in range(k)]) for k in range(12))


def space_string(space: str) -> str:
    """One full architecture string of ``space``, padded past 255 characters (the longest file
    name most file systems allow) where the space's own form is shorter."""
    texts = {"nas-bench-201": NB201, "enas-macro": MACRO}
    texts.update({zoo.get(name).space: zoo.get(name).text for name in zoo.names()})
    text = texts[space]
    return text if len(text) > 255 else text + " " * (256 - len(text))


def model_info(capsys, *argv):
    from evaluation.model_info import main

    return run_cli_inprocess(main, list(argv), capsys)


@pytest.mark.parametrize("space", space_names())
def test_every_space_string_longer_than_a_file_name_is_parsed(space, capsys):
    text = space_string(space)
    assert len(text) > 255
    assert get_space(space).looks_like(text.strip())
    code, out, err = model_info(capsys, "--arch", text)
    assert code == 0, err
    assert "Traceback" not in err and space in out


def test_the_exact_darts_v2_genotype_as_printed_by_darts(capsys):
    genotype = zoo.get("darts-v2").text
    assert genotype.startswith("Genotype(normal=[('sep_conv_3x3', 0)") and len(genotype) > 255
    code, out, err = model_info(capsys, "--arch", genotype)
    assert code == 0, err


@pytest.mark.parametrize("case, expected", [
    ("truncated", "is truncated: the pickle ends after"),
    ("empty", "is empty, not an architecture file"),
    ("png", "is a PNG image (the search's drawing?), not an architecture file"),
    ("binary", "is a binary file that is neither JSON nor a pickle"),
    ("text", "is a text file that holds no architecture string"),
    ("foreign_pickle", "holds other Python objects than an architecture"),
])
def test_a_damaged_or_wrong_file_is_named_for_what_is_wrong(case, expected, tmp_path, capsys):
    good = pickle.dumps(zoo.get("darts-v2"), protocol=4)
    data = {"truncated": good[: len(good) // 2], "empty": b"",
            "png": b"\x89PNG\r\n\x1a\n" + bytes(range(40)),
            "binary": bytes([0xfe, 0xff, 0x00, 0x81]) * 10,
            "text": b"hello, this is not a cell\n",
            "foreign_pickle": pickle.dumps(print)}[case]
    path = tmp_path / "arch-best"
    path.write_bytes(data)
    code, out, err = model_info(capsys, "--arch", str(path))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0]
    assert "safe" not in lines[0] and "is no file" not in lines[0]


def test_a_missing_file_is_still_called_missing(tmp_path, capsys):
    code, _, err = model_info(capsys, "--arch", str(tmp_path / "nowhere" / "arch-best.json"))
    assert code == 2 and "not found" in err
