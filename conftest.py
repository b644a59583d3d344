"""Root conftest: pytester for the plugin's own tests, and the plugin itself for checkouts whose
environment lacks its pytest11 entry point (an install that predates it, or PYTHONPATH=. use).

Where the entry point is installed it loads the plugin and `-p no:tst_bench` disables it; here,
without it, `-p no:tst_bench.plugin` does.
"""

from tst_bench.bench.entry_point import PLUGIN_MODULE, entry_point_installed

pytest_plugins = ["pytester"] + ([] if entry_point_installed() else [PLUGIN_MODULE])
