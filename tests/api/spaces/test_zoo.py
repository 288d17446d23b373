"""Every zoo preset builds at its full published size and trains one step (batch 2), and its
parameter count is the one docs/zoo.md prints."""
import pytest
import torch

from api.spaces import get_space, zoo
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("one_thread")


def build_full_size(name):
    arch = zoo.get(name)
    space = get_space(arch.space)
    if arch.space == "autoshrink-rnn":  # the ShrinkRNN LM at the paper's 745 units
        from api.spaces.autoshrink_rnn.model import RNNModel

        return RNNModel(arch.value, 200, 745, 745), "rnn"
    if space.kind == "rnn":
        return space.build_network(arch.value, ntokens=200), "rnn"
    dataset = "imagenet" if arch.space == "autoshrink-cnn" else "cifar10"
    return space.build_network(arch.value, dataset), dataset


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_every_preset_builds_at_full_size_and_trains_a_step(name):
    torch.manual_seed(0)
    model, kind = build_full_size(name)
    model.train()
    if kind == "rnn":
        x = torch.randint(0, 200, (4, 2))
        loss, _ = model.loss(x, x, model.init_hidden(2))
    else:
        size = 224 if kind == "imagenet" else 32
        out = model(torch.randn(2, 3, size, size))
        logits = out[0] if isinstance(out, tuple) else out
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and sum(g is not None and bool(g.abs().sum() > 0)
                                        for g in grads) > len(grads) // 2


ZOO_PARAMS = {"darts-v2": 3349342, "darts-v1": 3169414, "gdas-v1": 3368782,
                 "nasnet-a": 3830950, "amoebanet-a": 3145078, "pnasnet": 4481110,
                 "enas": 4394710, "naonet-a": 11470150, "naonet-b": 2921302,
                 "naonet-ws": 2708038, "shrinkcnn-a": 3636301, "shrinkcnn-b": 3636301,
                 "darts-ptb": 22960000, "enas-ptb": 22027104, "shrinkrnn": 23000700}


@pytest.mark.slow
def test_zoo_table_covers_every_preset_with_its_count():
    """docs/zoo.md prints each preset's parameter count; the counts are the spaces' own."""
    table = (REPO / "docs" / "zoo.md").read_text(encoding="utf-8")
    assert set(ZOO_PARAMS) == set(zoo.names())
    for name, params in ZOO_PARAMS.items():
        arch = zoo.get(name)
        dataset = ("ptb" if get_space(arch.space).kind == "rnn" else
                   "imagenet" if arch.space == "autoshrink-cnn" else "cifar10")
        assert get_space(arch.space).count(arch.value, dataset)[0] == params, name
        assert f"{params / 1e6:.6f}M" in table, name
