"""Sweeps: a grid of trainer (and predictor) settings, one TsT run per configuration, the best
one (optimistic) and the nested cross-validation score (honest). `tst-bench sweep` runs one."""
