"""AutoShrink's own presets (ShrinkCNN-A/B, ShrinkRNN) in the zoo."""
from api import presets, zoo
from api.spaces.arch_io import Arch

zoo.register("shrinkcnn-a", lambda: Arch("autoshrink-cnn", presets.get("shrinkcnn-a")),
             dataset="imagenet", params_M=3.6, macs_M=384, top1=73.9,
             source="AutoShrink (AAAI 2020)")
zoo.register("shrinkcnn-b", lambda: Arch("autoshrink-cnn", presets.get("shrinkcnn-b")),
             dataset="imagenet", params_M=3.6, macs_M=384, top1=75.1,
             source="AutoShrink (AAAI 2020)")
zoo.register("shrinkrnn", lambda: Arch("autoshrink-rnn", presets.get("shrinkrnn")),
             dataset="ptb", test_ppl=56.5, source="AutoShrink (AAAI 2020)")
