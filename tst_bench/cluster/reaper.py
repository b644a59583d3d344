"""Removes a locally started Ray cluster's processes when its driver dies without cleaning up.

Ray's own fate-sharing stops the raylet and workers when the driver that started them is killed,
but its agents linger for a minute or more. This small process (`python -m tst_bench.cluster.reaper
DRIVER_PID SESSION_DIR`) keeps a list of the session's processes while the driver lives and kills
whatever is left of them once the driver is gone or closes our stdin. It touches only processes
that descend from the driver and belong to that session, so other Ray clusters on the machine are
safe. Linux only (it reads /proc); elsewhere it exits at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)
POLL_S = 0.5
PROC = Path("/proc")

ProcessKey = tuple[int, int]  # (pid, start time in clock ticks): a pid alone can be reused


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a process that has not exited, or None."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    if fields[0] in ("Z", "X"):  # exited, waiting to be reaped
        return None
    return int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def session_processes(driver: int, session_dir: str) -> set[ProcessKey]:
    """The driver's children that run `session_dir` (gcs, raylet, monitors) and all their descendants."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
            starts[int(entry.name)] = stat[1]
    roots = [pid for pid in children.get(driver, []) if session_dir in _cmdline(pid)]
    found: set[ProcessKey] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in starts and (pid, starts[pid]) not in found:
            found.add((pid, starts[pid]))
            stack.extend(children.get(pid, []))
    found.discard((os.getpid(), starts.get(os.getpid(), -1)))
    return found


def kill_remaining(processes: set[ProcessKey]) -> int:
    """SIGKILL each process that still runs (same pid and start time); returns how many."""
    killed = 0
    for pid, start in processes:
        stat = _stat(pid)
        if stat is not None and stat[1] == start:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def watch(driver: int, session_dir: str) -> tuple[int, bool]:
    """Follow the session until the driver dies or releases us; (processes killed, driver died)."""
    released = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.buffer.read()
        released.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    known: set[ProcessKey] = set()
    while _stat(driver) is not None and not released.is_set():
        known |= session_processes(driver, session_dir)
        released.wait(POLL_S)
    driver_died = _stat(driver) is None  # its death also closes our stdin
    if driver_died:
        time.sleep(POLL_S)  # give Ray's own fate-sharing a moment first
    return kill_remaining(known), driver_died


def main(argv: list[str]) -> int:
    if not PROC.is_dir() or len(argv) != 2:
        return 0
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    logging.basicConfig(level=logging.INFO, format="tst-bench ray reaper: %(message)s")
    killed, driver_died = watch(int(argv[0]), argv[1])
    if killed and driver_died:
        logger.info("driver gone: removed %d leftover Ray process(es) of %s", killed, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
