"""`python -m tst_bench ...`: the `tst-bench` command."""

import sys

from .cli import main

sys.exit(main())
