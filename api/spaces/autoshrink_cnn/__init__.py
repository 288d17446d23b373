"""AutoShrink's CNN space: node ops, the macro network a cell graph is built in, the final
training's model spec, and the ShrinkCNN presets. The graph itself is :mod:`api.spaces.dag`."""
