"""Final CNN trainings: CIFAR and ImageNet recipes for any architecture, ImageNet validation."""
