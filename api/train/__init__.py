"""What the final trainings share: the epoch loop, checkpoints, metrics, optimizers and
schedules, EMA, augmentation, drop-path, DDP plumbing, ImageNet data, and the network a
trainer builds for any architecture."""
