"""``graph-best`` files written before the AutoShrink spaces became packages still load: with
the original README's plain ``pickle.load``, the project's safe loaders and every trainer's
``--arch``. The fixture is a real tiny CNN search's ``graph-best`` written by that code."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

from api.spaces.arch_io import load_arch
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.graph_io import load_graph, save_graph
from tests.conftest import REPO

OLD = REPO / "tests" / "fixtures" / "cnn-graph-best-v0.1"
MASK = [[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
OPS = ["input", "SepConv3x3", "SepConv3x3", "Conv1x1"]


def test_the_old_pickle_names_the_old_module():
    assert b"api.graph" in OLD.read_bytes() and b"api.spaces.dag" not in OLD.read_bytes()


@pytest.mark.slow
def test_plain_pickle_load_as_the_original_readme():
    """The original README's snippet, in a fresh interpreter (nothing imported before)."""
    code = ("import pickle; g = pickle.load(open(r'%s', 'rb')); "
            "print(g.mask.tolist()); print(g.ops_def); print(type(g).__module__)" % OLD)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert out == [str(MASK), str(OPS), "api.spaces.dag.graph"]


def test_safe_loaders_read_it():
    for graph in (load_graph(str(OLD)), load_arch(str(OLD)).value):
        assert isinstance(graph, CellGraph)
        assert graph.mask.tolist() == MASK and list(graph.ops_def) == OPS
        assert graph.settings["network"]["num_classes"] == 10


def test_new_pickles_name_the_new_module_and_round_trip(tmp_path):
    graph = load_graph(str(OLD))
    save_graph(graph, str(tmp_path / "graph-best"), png=False)
    raw = (tmp_path / "graph-best").read_bytes()
    assert b"api.spaces.dag.graph" in raw
    again = pickle.loads(raw)
    assert np.array_equal(again.mask, graph.mask) and again.canonical_hash() == graph.canonical_hash()
