import json
import pickle

import numpy as np
import pytest

from api.errors import UserError
from api.spaces.dag.graph import CellGraph
from api.spaces.dag.graph_io import load_graph, loads_graph, save_graph

OPS4 = ["input", "SepConv3x3", "Conv1x1", "SepConv3x3"]


def test_complete_graph_edge_counts():
    assert CellGraph.complete(8, ["input"] + ["Conv1x1"] * 7).num_edges == 28
    assert CellGraph.complete(6, ["x"] * 6).num_edges == 15
    g = CellGraph.complete(4, OPS4)
    assert g.leaves == [3] and g.active_nodes == [1, 2, 3]


def test_unreachable_sources_do_not_count_and_optimize_removes_them():
    g = CellGraph.complete(4, OPS4).remove_edge(0, 1)
    # node 1 lost its only input: its out-edges 1->2, 1->3 no longer count
    assert (1, 2) not in g.edge_list and (1, 3) not in g.edge_list
    assert g.num_edges == 3 and g.active_nodes == [2, 3]
    raw = CellGraph.complete(4, OPS4)
    raw.mask[0, 1] = 0
    assert raw.num_edges == 3 and raw.mask.sum() == 5
    assert raw.optimize().mask.sum() == 3


def test_leaves_and_empty_cell():
    mask = np.zeros((4, 4), int)
    mask[0, 1] = mask[0, 2] = 1
    g = CellGraph(mask, OPS4)
    assert g.leaves == [1, 2] and not g.is_empty
    empty = g.remove_edge(0, 1).remove_edge(0, 2)
    assert empty.is_empty and empty.leaves == [] and empty.num_edges == 0


def test_canonical_hash_identifies_same_active_graph():
    a = CellGraph.complete(4, OPS4).remove_edge(0, 1)
    b = CellGraph.complete(4, OPS4)
    b.mask[0, 1] = 0  # same active graph, but dead edges still in the raw mask
    assert not np.array_equal(a.mask, b.mask)
    assert a.canonical_hash() == b.canonical_hash()
    assert a.canonical_hash() != CellGraph.complete(4, OPS4).canonical_hash()
    other_ops = CellGraph.complete(4, ["input", "Conv1x1", "Conv1x1", "SepConv3x3"])
    assert other_ops.canonical_hash() != CellGraph.complete(4, OPS4).canonical_hash()


def test_invalid_graphs_are_refused():
    with pytest.raises(UserError):
        CellGraph(np.ones((3, 3), int), ["a"] * 3)  # not upper-triangular
    with pytest.raises(UserError):
        CellGraph.complete(1, ["input"])
    with pytest.raises(UserError):
        CellGraph(np.zeros((3, 3), int), ["a"] * 2)


def test_pickle_json_text_round_trip(tmp_path):
    g = CellGraph.complete(4, OPS4, settings={"network": {"scale": [1, 2]}}).remove_edge(1, 2)
    g.score, g.accuracy, g.macs, g.step = 0.5, 0.61, np.int64(1000), 3
    path = tmp_path / "graph-best"
    save_graph(g, str(path))
    assert (tmp_path / "graph-best.png").stat().st_size > 1000
    plain = pickle.load(open(path, "rb"))  # the original's way of reading it
    assert isinstance(plain.mask, np.ndarray) and plain.mask.shape == (4, 4)
    assert plain.ops_def == OPS4 and plain.score == 0.5 and plain.macs == 1000
    assert plain.edges == g.num_edges == 5 and plain.settings == g.settings
    from_json = load_graph(str(path) + ".json")
    assert from_json == g and from_json.accuracy == 0.61
    assert json.loads((tmp_path / "graph-best.json").read_text())["format_version"] == 1
    assert CellGraph.from_string(g.to_string()) == g
    assert "nodes=4" in repr(g) and "2->3" in repr(g)


def test_restricted_loader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (eval, ("__import__('os').system('echo pwned')",))

    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(UserError, match="not a safe"):
        load_graph(str(path))
    with pytest.raises(UserError, match="is truncated: the pickle ends after 20 bytes"):
        loads_graph(pickle.dumps(CellGraph.complete(3, ["a"] * 3))[:20])
    with pytest.raises(UserError, match="not found"):
        load_graph(str(tmp_path / "missing"))


def test_unknown_format_version_is_explained(tmp_path):
    data = CellGraph.complete(3, ["a"] * 3).to_dict()
    data["format_version"] = 99
    path = tmp_path / "g.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match="version 99"):
        load_graph(str(path))


def test_presets_load():
    a, b = load_graph("shrinkcnn-a"), load_graph("shrinkcnn-b")
    assert a == b and a.leaves == [3, 4] and a.num_edges == 6
    assert a.settings["activation"] == "relu" and b.settings["activation"] == "swish"
    assert load_graph("shrinkrnn").num_nodes == 6
