"""w2v.pkl: building it (Word2Vec offline, GloVe/word2vec text files) and reading it safely."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from api.errors import UserError
from api.lm.data import Corpus
from searching.rnn.preprocess import main as preprocess_main
from api.lm.embedding import embedding_matrix, load_w2v


def write_corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 60), ("valid", 5), ("test", 5)):
        lines = [" ".join(rng.choice(words[:10] if split == "train" else words, 6)) for _ in range(n)]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_word2vec_offline_covers_the_vocabulary_and_is_seeded(tmp_path, capsys):
    data = write_corpus(tmp_path / "c")
    out_a, out_b = tmp_path / "a.pkl", tmp_path / "b.pkl"
    preprocess_main(["--data", str(data), "--emsize", "8", "--out", str(out_a), "--seed", "3"])
    assert "words x 8" in capsys.readouterr().out
    preprocess_main(["--data", str(data), "--emsize", "8", "--out", str(out_b), "--seed", "3"])
    with open(out_a, "rb") as f:
        raw = pickle.load(f)
    assert type(raw) is dict and all(type(v) is list for v in raw.values())  # plain format
    vectors = load_w2v(str(out_a))
    corpus = Corpus(str(data))
    assert set(vectors) == set(corpus.dictionary.idx2word)
    assert all(v.shape == (8,) for v in vectors.values())
    assert out_a.read_bytes() == out_b.read_bytes()  # same seed, same file
    # words never seen in train.txt (only in valid/test) get U(-0.5, 0.5)
    unseen = [w for w in ("w10", "w11") if w in vectors]
    assert unseen and all(np.abs(vectors[w]).max() <= 0.5 for w in unseen)


@pytest.mark.parametrize("header", [True, False])  # word2vec text format / GloVe
def test_vectors_from_a_text_file(tmp_path, header):
    data = write_corpus(tmp_path / "c")
    lines = [f"w{i} " + " ".join(str(0.1 * i + k) for k in range(4)) for i in range(5)]
    text = (f"{len(lines)} 4\n" if header else "") + "\n".join(lines) + "\n"
    (tmp_path / "vec.txt").write_text(text)
    out = tmp_path / "w2v.pkl"
    preprocess_main(["--data", str(data), "--emsize", "4", "--out", str(out),
                     "--vectors", str(tmp_path / "vec.txt")])
    vectors = load_w2v(str(out))
    np.testing.assert_allclose(vectors["w3"], [0.3, 1.3, 2.3, 3.3], rtol=1e-6)
    assert np.abs(vectors["w9"]).max() <= 0.5  # not in the file: random
    with pytest.raises(UserError, match="4 dimensions but --emsize is 6"):
        preprocess_main(["--data", str(data), "--emsize", "6", "--out", str(out),
                         "--vectors", str(tmp_path / "vec.txt")])


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_w2v_loader_refuses_foreign_and_bad_files(tmp_path):
    with pytest.raises(UserError, match="python searching/rnn/preprocess.py"):
        load_w2v(str(tmp_path / "missing.pkl"))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"a": Evil()}))
    with pytest.raises(UserError, match="not a w2v pickle.*refusing to load global"):
        load_w2v(str(evil))
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x00not a pickle at all")
    with pytest.raises(UserError, match="not a w2v pickle"):
        load_w2v(str(junk))
    wrong = tmp_path / "list.pkl"
    wrong.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UserError, match="non-empty"):
        load_w2v(str(wrong))
    ragged = tmp_path / "ragged.pkl"
    ragged.write_bytes(pickle.dumps({"a": [1.0, 2.0], "b": [1.0]}))
    with pytest.raises(UserError, match="damaged"):
        load_w2v(str(ragged))
    arrays = tmp_path / "arrays.pkl"  # numpy arrays are allowed
    arrays.write_bytes(pickle.dumps({"a": np.ones(3, np.float32)}))
    assert load_w2v(str(arrays))["a"].tolist() == [1.0, 1.0, 1.0]


def test_embedding_matrix_checks_the_size():
    vectors = {"a": np.ones(3, np.float32)}
    emb = embedding_matrix(["a", "b"], 3, vectors, seed=0)
    assert emb[0].tolist() == [1.0, 1.0, 1.0] and emb[1].abs().max() <= 0.5
    with pytest.raises(UserError, match="3-dimensional vectors but --emsize is 4"):
        embedding_matrix(["a"], 4, vectors, seed=0)
