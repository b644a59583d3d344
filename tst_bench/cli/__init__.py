"""`tst-bench`: run a TsT, prune a benchmark, write a synthetic one, report and compare results.

Exit codes: 0 success, 1 the run failed while working (completed folds stay on disk; rerun the
same command to resume), 2 bad input (nothing written), 130 interrupted (as 1, resumable).

    main.py         the entry point: parser, logging, errors -> exit codes
    run_options.py  the options that define a TsT run (shared by `run` and `prune`) -> RunConfig
    run.py          `tst-bench run`
    prune.py        `tst-bench prune` (Iterative Bias Pruning, tst_bench/ibp)
    synth.py        `tst-bench synth`
`report` and `compare` are declared next to the reports they write (tst_bench/reports/commands.py).
"""

from __future__ import annotations

from .main import build_parser, main

__all__ = ["build_parser", "main"]
