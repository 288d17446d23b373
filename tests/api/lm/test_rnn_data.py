"""PTB-format corpora, batches and the penn_proxy maker."""
from pathlib import Path

import pytest
import torch

from api.errors import UserError
from api.lm.data import Corpus, batchify, get_batch, unigram_perplexity
from searching.rnn.make_penn_proxy import main as make_proxy_main

from tests.conftest import REPO  # noqa: E402
PENN_PROXY = REPO.parent / "shared" / "data" / "penn_proxy"


def write_corpus(root: Path, train="a b c\nb c d\n", valid="a d e\n", test="c b\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        (root / f"{name}.txt").write_text(text)
    return root


def test_corpus_vocabulary_and_streams(tmp_path):
    c = Corpus(str(write_corpus(tmp_path / "c")))
    words = c.dictionary.idx2word
    assert words == ["a", "b", "c", "<eos>", "d", "e"]  # first appearance, all splits
    assert c.ntokens == 6
    assert c.train.tolist() == [0, 1, 2, 3, 1, 2, 4, 3]  # "<eos>" ends every line
    assert c.valid.tolist() == [0, 4, 5, 3]
    assert c.test.tolist() == [2, 1, 3]


def test_batchify_and_get_batch():
    data = torch.arange(10)
    b = batchify(data, 3)
    assert b.shape == (3, 3)                 # tail token dropped
    assert b[:, 0].tolist() == [0, 1, 2]     # each column is a contiguous stream
    assert b[:, 1].tolist() == [3, 4, 5]
    x, y = get_batch(b, 0, 2)
    assert x.tolist() == [[0, 3, 6], [1, 4, 7]] and y.tolist() == [[1, 4, 7], [2, 5, 8]]
    x, y = get_batch(b, 1, 5)                # clipped at the end of the stream
    assert x.shape == (1, 3) and y[0].tolist() == [2, 5, 8]
    with pytest.raises(UserError, match="too small for batch size 8"):
        batchify(data, 8)


@pytest.mark.parametrize("case, message", [
    ("no_folder", "corpus folder not found"),
    ("no_file", "valid.txt not found"),
    ("empty", "test.txt is empty"),
])
def test_bad_corpus_gives_clear_errors(tmp_path, case, message):
    root = tmp_path / "c"
    if case != "no_folder":
        write_corpus(root)
    if case == "no_file":
        (root / "valid.txt").unlink()
    if case == "empty":
        (root / "test.txt").write_text("\n  \n")
    with pytest.raises(UserError, match=message):
        Corpus(str(root))


def test_unigram_baseline():
    train = torch.tensor([0, 0, 0, 1])
    ppl = unigram_perplexity(train, torch.tensor([0, 1]), 2)  # add-one: p = 4/6, 2/6
    assert ppl == pytest.approx(1 / ((4 / 6) * (2 / 6)) ** 0.5)


@pytest.mark.parametrize("mikolov_names", [True, False])
def test_make_penn_proxy_takes_the_first_lines(tmp_path, capsys, mikolov_names):
    ptb = tmp_path / "ptb"
    ptb.mkdir()
    for split in ("train", "valid", "test"):
        name = f"ptb.{split}.txt" if mikolov_names else f"{split}.txt"
        (ptb / name).write_text("".join(f" {split} line {i} \n" for i in range(10)))
    out = tmp_path / "proxy"
    make_proxy_main(["--ptb", str(ptb), "--out", str(out), "--train_lines", "4",
                     "--valid_lines", "2", "--test_lines", "3"])
    assert (out / "train.txt").read_text() == "".join(f" train line {i} \n" for i in range(4))
    assert len((out / "valid.txt").read_text().splitlines()) == 2
    assert len((out / "test.txt").read_text().splitlines()) == 3
    assert Corpus(str(out)).train.numel() == 4 * 4
    with pytest.raises(UserError, match="ptb.valid.txt nor valid.txt"):
        (out / "valid.txt").unlink()
        make_proxy_main(["--ptb", str(out), "--out", str(tmp_path / "again")])


def test_real_penn_proxy():
    if not (PENN_PROXY / "train.txt").is_file():
        pytest.skip(f"penn_proxy not present at {PENN_PROXY}")
    c = Corpus(str(PENN_PROXY))
    assert c.train.numel() == 88832  # first 4,000 PTB lines with <eos>
    assert c.ntokens == 7002
    assert 600 < unigram_perplexity(c.train, c.valid, c.ntokens) < 800
