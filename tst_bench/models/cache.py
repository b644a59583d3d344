"""The on-disk cache where built-in models are built once and reused."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


def cache_root() -> Path:
    """`$TST_BENCH_CACHE`, else `~/.cache/tst-bench`."""
    configured = os.environ.get("TST_BENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "tst-bench"


def build_once(name: str, build: Callable[[Path], None], marker: str = "config.json") -> Path:
    """Return `cache_root()/name`, building it first into a temporary folder that is renamed in.

    Concurrent builders (e.g. several Ray workers) are safe: the first rename wins and the
    others discard their copy, so nobody ever sees a half-written model folder.
    """
    target = cache_root() / name
    if (target / marker).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        logger.info("building %s into %s", name, target)
        build(staging)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / marker).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
