"""The on-disk cache where built-in models are built once and reused."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Written last into a model folder tst-bench built: its presence means the folder is complete,
#: its content names the model and the training recipe that suits it.
MARKER_FILE = "tst_bench_model.json"


def cache_root() -> Path:
    """`$TST_BENCH_CACHE`, else `~/.cache/tst-bench`."""
    configured = os.environ.get("TST_BENCH_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "tst-bench"


def write_marker(directory: Path, **fields: Any) -> None:
    (directory / MARKER_FILE).write_text(json.dumps(fields, indent=2) + "\n")


def read_marker(directory: Path) -> dict[str, Any]:
    """The marker of a model folder tst-bench built; empty for any other folder."""
    path = directory / MARKER_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def build_once(name: str, build: Callable[[Path], None], marker: str = MARKER_FILE) -> Path:
    """Return `cache_root()/name`, building it first into a temporary folder that is renamed in.

    Concurrent builders (e.g. several Ray workers) are safe: the first rename wins and the
    others discard their copy, so nobody ever sees a half-written model folder.
    """
    target = cache_root() / name
    if (target / marker).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{name}.{secrets.token_hex(4)}"
    staging.mkdir()  # not mkdtemp, whose 0700 would keep a shared cache from the other users
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
