"""SETN, the self-evaluated template network (Dong & Yang, ICCV 2019), on the one
weight-sharing trainer (searching/oneshot)."""
