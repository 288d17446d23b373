"""GDAS (Dong & Yang, CVPR 2019) on the one weight-sharing trainer (searching/oneshot)."""
