"""A command-line tool run as a child process group: output logged to a file, stopped as a whole.

The child gets its own session, so a terminal's Ctrl-C reaches only this process; on timeout,
Ctrl-C or any other exception the whole group (the tool and whatever it started, e.g. data
loader workers or torchrun ranks) is terminated, then killed, so nothing outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

LineCallback = Callable[[str], None]
_LINE_BREAK = re.compile(rb"[\r\n]")


class ProcessTimeout(Exception):
    """The process group ran past its time limit and was stopped."""


def run_logged(
    command: Sequence[str],
    log_path: Path,
    env: dict[str, str],
    cwd: Path,
    timeout_s: float | None = None,
    on_line: LineCallback | None = None,
    grace_s: float = 10.0,
) -> int:
    """Run `command` (no shell) with stdout and stderr streamed into `log_path`; its exit code.

    `on_line` sees every output line (progress bars' carriage-return updates included).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process: subprocess.Popen | None = None
        pump: threading.Thread | None = None
        try:
            with _interrupt_held_while_starting():
                process = subprocess.Popen(
                    list(command),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                )
                assert process.stdout is not None
                pump = threading.Thread(target=_pump, args=(process.stdout, log, on_line), daemon=True)
                pump.start()
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ProcessTimeout(f"{command[0]} ran past {timeout_s:g}s") from None
        finally:
            if process is not None:
                stop_group(process, grace_s)  # on errors, Ctrl-C, and leftovers of a finished leader
            if pump is not None:
                pump.join(timeout=grace_s)


@contextlib.contextmanager
def _interrupt_held_while_starting() -> Iterator[None]:
    """Hold a Ctrl-C that comes while the child starts and raise it once the child is tracked.

    A KeyboardInterrupt raised inside Popen (after the fork, before Popen returns) would leave
    the child, in its own session, running with nobody to stop it. Python delivers signals to
    the main thread only, so elsewhere there is nothing to hold; a handler installed outside
    Python (getsignal gives None) could not be restored, so it is left in place.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[FrameType | None] = []
    signal.signal(signal.SIGINT, lambda _signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held and callable(previous):
        previous(signal.SIGINT, held[0])
    elif held and previous == signal.SIG_DFL:
        raise KeyboardInterrupt


def stop_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, wait up to `grace_s`, then SIGKILL what is left."""
    group = process.pid
    if not _signal_group(group, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.1)
        if not _group_alive(group):
            return
    _signal_group(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)


def tail(path: Path, lines: int = 25) -> str:
    """The last `lines` lines of a log, progress-bar redraws reduced to their final state."""
    if not path.exists():
        return "(no log written)"
    text = path.read_bytes()[-256_000:].decode("utf-8", "replace")
    kept = []
    for line in text.split("\n"):
        redraws = [part for part in line.split("\r") if part.strip()]
        if redraws:
            kept.append(redraws[-1].rstrip())
    return "\n".join(kept[-lines:])


def _signal_group(group: int, sig: int) -> bool:
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pump(stream, log, on_line: LineCallback | None) -> None:
    """Copy the child's output into the log as it comes and hand each line to `on_line`."""
    pending = b""
    while chunk := stream.read1(65536):
        log.write(chunk)
        log.flush()
        if on_line is None:
            continue
        pending += chunk
        *complete, pending = _LINE_BREAK.split(pending)
        for line in complete:
            if line.strip():
                on_line(line.decode("utf-8", "replace"))
    if on_line is not None and pending.strip():
        on_line(pending.decode("utf-8", "replace"))
