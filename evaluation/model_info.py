"""Params and MACs of any architecture's network (GDAS's ``get_model_infos``).

    python evaluation/model_info.py --arch darts-v2                       # NetworkCIFAR C=36, 20 cells
    python evaluation/model_info.py --arch darts-v2 --dataset imagenet    # NetworkImageNet C=48, 14
    python evaluation/model_info.py --arch '|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|'
    python evaluation/model_info.py --arch search-darts/arch-best --C 16 --layers 8

--arch takes a zoo preset, a space string or any file a search writes; the network is the
space's reference one for --dataset (RNN cells: their PTB language model). The last line reads
``params=X.XXXXXXM macs=Y.YYYYYYM`` (millions, 6 decimals).

See docs/evaluation.md.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Optional, Sequence

from api.errors import UserError, run_cli

#: Other spellings of the dataset names (GDAS's and NAS-Bench-201's).
DATASET_ALIASES = {"imagenet-1k": "imagenet", "imagenet1k": "imagenet",
                   "imagenet16-120": "imagenet16", "imagenet-16-120": "imagenet16",
                   "cifar-10": "cifar10", "cifar-100": "cifar100"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True,
                   help="a zoo preset (darts-v2, gdas-v1, shrinkcnn-a, ...), a space string or "
                        "any file a search wrote")
    p.add_argument("--dataset", default=None,
                   help="cifar10, cifar100, imagenet16 or imagenet (default: cifar10; for an "
                        "AutoShrink graph, the size its network proposes)")
    p.add_argument("--C", "--init_channels", dest="C", type=int,
                   help="initial channels (default: the space's, e.g. 36 / 48 / 16)")
    p.add_argument("--layers", type=int, help="cells (DARTS family; default 20 / 14)")
    p.add_argument("--N", dest="N", type=int,
                   help="cells per stage (NAS-Bench-201; DARTS family: layers = 3N + 2)")
    p.add_argument("--emsize", type=int,
                   help="RNN cells: embedding = hidden size (default: the space's own)")
    p.add_argument("--ntokens", type=int,
                   help="RNN cells: vocabulary (default: ptb 10,000, wikitext2 33,278)")
    p.add_argument("--input", type=int, nargs=4, metavar=("N", "C", "H", "W"),
                   help="count MACs for this input batch instead (default: 1 image of the "
                        "dataset's size)")
    return p


def _dataset(name: Optional[str], arch) -> str:
    from api.spaces.base import DATASET_INPUT, dataset_info

    if name is None:
        if arch.space == "autoshrink-cnn":  # the resolution its own network proposes
            size = (arch.value.settings or {}).get("image_size")
            size = size or ((arch.value.settings or {}).get("network") or {}).get("image_size")
            for dataset, shape in DATASET_INPUT.items():
                if shape[-1] == size:
                    return dataset
        return "cifar10"
    key = DATASET_ALIASES.get(name.lower(), name.lower())
    dataset_info(key)  # one clear error for an unknown name
    return key


def model_info(args: argparse.Namespace) -> Dict[str, Any]:
    from torch import nn

    from api.train import arch_train as at
    from api.spaces.complexity import count_macs
    from api.spaces import get_space
    from api.spaces.arch_io import load_arch
    from api.spaces.base import dataset_info, params_without_auxiliary

    arch = load_arch(args.arch)
    if get_space(arch.space).kind == "rnn":
        return _rnn_info(arch, args)
    family = at.family_of(arch.space)
    dataset = _dataset(args.dataset, arch)
    shape, classes = dataset_info(dataset)
    space = get_space(arch.space)
    if family == "autoshrink":
        if any(getattr(args, k) is not None for k in ("C", "layers", "N")):
            raise UserError("--C, --layers and --N size DARTS-family and NAS-Bench-201 "
                            "networks; an AutoShrink graph's network is its own (see "
                            "evaluation/cnn/build_imagenet.py)")
        kwargs: Dict[str, Any] = {}
    else:
        kwargs = at.network_kwargs(arch.space, args, auxiliary=False)
    if args.input is not None:
        n, c, h, w = args.input
        if min(args.input) < 1 or c != 3:
            raise UserError(f"--input needs N 3 H W with positive sizes, got {args.input}")
        shape = (c, h, w)
    model = space.build_network(arch.value, dataset, **kwargs)
    batch = args.input[0] if args.input is not None else 1
    if family == "nb201":  # the benchmark's own counting (params and FLOPs columns)
        if args.input is None:
            params, macs = space.count(arch.value, dataset, **kwargs)
        else:
            from api.spaces.nasbench201.network import benchmark_cost

            params, flops = benchmark_cost(model, shape)
            macs = int(round(flops)) * batch
        what = "params and FLOPs as NAS-Bench-201 counts them"
    else:
        params = params_without_auxiliary(model)
        macs = count_macs(model, shape) * batch
        what = ("params: all but the auxiliary head (BN included); MACs: conv + linear "
                "multiply-accumulates")
    network = type(model).__name__
    if type(model).extra_repr is not nn.Module.extra_repr:  # DARTS's: C, layers, ...
        settings = model.extra_repr()
    elif family == "nb201":
        settings = f"C={model.C}, N={model.N}"
    elif family == "autoshrink":
        from api.spaces.autoshrink_cnn.network import NetworkSpec

        proposed = arch.value.settings or {}
        proposed = proposed.get("network") if isinstance(proposed.get("network"), dict) \
            else proposed
        settings = ", ".join(f"{k}={v}" for k, v in proposed.items()
                             if k in NetworkSpec.__dataclass_fields__)
    else:
        settings = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    classes = heads[-1].out_features if heads else classes
    print(f"space: {arch.space}")
    print(f"arch: {arch.text}")
    print(f"network: {network}({settings}) for {dataset} ({classes} classes)")
    print(f"input: {batch}x{'x'.join(map(str, shape))}; {what}")
    print(f"params={params / 1e6:.6f}M macs={macs / 1e6:.6f}M")
    return {"space": arch.space, "arch": arch.text, "dataset": dataset, "network": network,
            "params": int(params), "macs": int(macs), "input": [batch, *shape]}


def _rnn_info(arch, args: argparse.Namespace) -> Dict[str, Any]:
    """An RNN cell's language model: params and MACs of one word (cell and decoder matmuls),
    at the size its space trains it (ShrinkRNN 745, DARTS 850, ENAS 748) unless --emsize."""
    from api.spaces import get_space

    if any(getattr(args, k) is not None for k in ("C", "layers", "N", "input")):
        raise UserError("--C, --layers, --N and --input size CNN networks; an RNN cell's "
                        "language model takes --emsize and --ntokens")
    dataset = (args.dataset or "ptb").lower()
    kwargs = {k: v for k, v in (("ntokens", args.ntokens), ("emsize", args.emsize))
              if v is not None}
    params, macs = get_space(arch.space).count(arch.value, dataset, **kwargs)
    print(f"space: {arch.space}")
    print(f"arch: {arch.text}")
    print(f"network: tied-embedding language model for {dataset}"
          + (f" ({', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else ""))
    print("per word; params: all trainable (tied embedding once); MACs: cell + decoder matmuls")
    print(f"params={params / 1e6:.6f}M macs={macs / 1e6:.6f}M")
    return {"space": arch.space, "arch": arch.text, "dataset": dataset,
            "network": "language model", "params": int(params), "macs": int(macs)}


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    return model_info(build_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
