"""--resume refuses other data: the proxy images (CNN), the corpus, vocabulary and embeddings
(RNN) are fingerprinted in the saved settings; paths may move, content may not."""
import pickle
import shutil

import numpy as np
import pytest

from api.errors import UserError
from api.runs.fingerprint import content_fingerprint
from tests.conftest import write_chain_corpus, write_cifar10
from searching.cnn.autoshrink_cnn import build_parser as cnn_parser
from searching.cnn.autoshrink_cnn import make_search as make_cnn_search
from searching.rnn.train import build_parser as rnn_parser
from searching.rnn.autoshrink_rnn import make_search as make_rnn_search

pytestmark = pytest.mark.usefixtures("one_thread")

CNN_TINY = ["--nodes", "3", "--max_steps", "1", "--epochs", "1", "--proxy_train", "40",
            "--proxy_val", "20", "--depth", "1", "--scale", "0.25", "--pool", "1",
            "--replicate", "1", "--quiet", "--no_plots"]
RNN_TINY = ["--nodes", "3", "--max_steps", "1", "--epochs", "1", "--emsize", "8",
            "--batch_size", "8", "--eval_batch_size", "8", "--bptt", "6", "--quiet",
            "--no_plots"]


def test_fingerprint_sees_values_shapes_and_dtypes():
    a = np.arange(6, dtype=np.uint8)
    assert content_fingerprint(a) == content_fingerprint(a.copy())
    assert content_fingerprint(a) != content_fingerprint(a.reshape(2, 3))
    assert content_fingerprint(a) != content_fingerprint(a.astype(np.int64))
    b = a.copy()
    b[3] += 1
    assert content_fingerprint(a) != content_fingerprint(b)
    assert content_fingerprint("ab", "c") != content_fingerprint("a", "bc")
    assert content_fingerprint(None) != content_fingerprint("")


def _cnn(root, data, *extra):
    return make_cnn_search(cnn_parser().parse_args(
        ["--model_root", str(root), "--data", str(data), *CNN_TINY, *extra]))


def test_cnn_resume_refuses_other_proxy_images_but_accepts_a_moved_folder(tmp_path):
    data = write_cifar10(tmp_path / "a", per_batch=20, test=20, seed=0)
    other = write_cifar10(tmp_path / "b", per_batch=20, test=20, seed=1)
    root = tmp_path / "run"
    _cnn(root, data)  # started, state saved; not run
    with pytest.raises(UserError, match="differs: proxy data .*--force"):
        _cnn(root, other, "--resume")
    _cnn(root, other, "--resume", "--force")  # forced: accepted
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    _cnn(root, moved, "--resume").run()  # same content elsewhere: fine


def test_cnn_resume_refuses_a_different_proxy_file(tmp_path):
    data = write_cifar10(tmp_path / "a", per_batch=20, test=20)
    from searching.cnn.make_cifar10_proxy import main as make_proxy_main

    for seed in (0, 1):
        make_proxy_main(["--data", str(data), "--out", str(tmp_path / f"p{seed}.npz"),
                         "--train", "40", "--val", "20", "--seed", str(seed)])
    root = tmp_path / "run"
    _cnn(root, data, "--proxy_file", str(tmp_path / "p0.npz"))
    _cnn(root, data, "--proxy_file", str(tmp_path / "p0.npz"), "--resume")
    with pytest.raises(UserError, match="differs: proxy data"):
        _cnn(root, data, "--proxy_file", str(tmp_path / "p1.npz"), "--resume")


def _rnn(root, data, *extra):
    return make_rnn_search(rnn_parser().parse_args(
        ["--save", str(root), "--data", str(data), *RNN_TINY, *extra]))


def _w2v(path, words, seed):
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        pickle.dump({w: rng.normal(size=8).tolist() for w in words}, f)
    return path


def test_rnn_resume_refuses_other_corpus_vocabulary_or_embeddings(tmp_path):
    corpus = write_chain_corpus(tmp_path / "c", 40, 8, vocab=12, follow=0.7)
    words = [f"w{i}" for i in range(12)]
    emb_a = _w2v(tmp_path / "a.pkl", words, 0)
    emb_b = _w2v(tmp_path / "b.pkl", words, 1)
    root = tmp_path / "run"
    _rnn(root, corpus, "--emb_path", str(emb_a))
    _rnn(root, corpus, "--emb_path", str(emb_a), "--resume")
    with pytest.raises(UserError, match="differs: embeddings"):
        _rnn(root, corpus, "--emb_path", str(emb_b), "--resume")
    with pytest.raises(UserError, match="differs: embeddings"):
        _rnn(root, corpus, "--emb_path", "none", "--resume")
    other = write_chain_corpus(tmp_path / "d", 40, 8, vocab=12, follow=0.7, seed=5)
    with pytest.raises(UserError, match="differs: corpus"):
        _rnn(root, other, "--emb_path", str(emb_a), "--resume")
    # The same token ids under other words: only the vocabulary tells them apart.
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for split in ("train", "valid", "test"):
        text = (corpus / f"{split}.txt").read_text()
        (renamed / f"{split}.txt").write_text(text.replace("w", "v"))
    with pytest.raises(UserError, match="differs: embeddings .*; vocabulary"):
        _rnn(root, renamed, "--emb_path", str(emb_a), "--resume")


def test_rnn_emb_path_defaults_to_random_init_and_the_seed_command_still_parses():
    assert rnn_parser().parse_args([]).emb_path == "none"
    seed_cmd = ["--nodes", "6", "--data", "./data/penn_proxy/", "--emb_path",
                "./searching/rnn/w2v.pkl", "--emsize", "100", "--nhidlast", "100", "--lr", "20",
                "--clip", "0.25", "--epochs", "10", "--batch_size", "128"]
    assert rnn_parser().parse_args(seed_cmd).emb_path == "./searching/rnn/w2v.pkl"
