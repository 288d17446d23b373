"""Final trainings of found cells (CIFAR, ImageNet, PTB) and their size reports."""
