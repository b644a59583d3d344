"""`python -m tst_bench.cli ...`: the `tst-bench` command."""

import sys

from .main import main

sys.exit(main())
