"""How pytest finds the plugin: the `pytest11` entry point `tst_bench`, or the module by name.

Kept apart from the plugin module so a conftest can ask without importing the plugin first (pytest
rewrites the plugin's asserts only if it imports the module itself).
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT = "tst_bench"
PLUGIN_MODULE = "tst_bench.plugin"


def entry_point_installed() -> bool:
    """Whether this environment registers the plugin through its pytest11 entry point."""
    return any(ep.name == ENTRY_POINT and ep.value == PLUGIN_MODULE for ep in entry_points(group="pytest11"))


def plugin_args() -> list[str]:
    """`-p` arguments that load the plugin: by entry-point name when installed, else by module."""
    return ["-p", ENTRY_POINT if entry_point_installed() else PLUGIN_MODULE]
