"""DARTS (Liu et al., ICLR 2019), V1 and V2, on the one weight-sharing trainer (searching/oneshot)."""
