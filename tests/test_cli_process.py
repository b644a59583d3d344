"""The process-group runner behind the LlamaFactory trainer: logging, timeout, Ctrl-C, no orphans."""

import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from tst_bench.trainers.cli_process import ProcessTimeout, run_logged, tail

# A child that starts a grandchild in its own process group, reports the grandchild's pid, then
# hangs: stopping only the child would leave the grandchild behind as an orphan.
HANGING_PARENT = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("grandchild", grandchild.pid, flush=True)
time.sleep(600)
"""


# A child that exits at once and leaves a grandchild running in its process group.
FINISHING_PARENT = """
import subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("grandchild", grandchild.pid, flush=True)
"""


SLEEPER = "import time; time.sleep(600)"


def python(code):
    return [sys.executable, "-c", code]


def grandchild_pid(lines):
    return next(int(line.split()[1]) for line in lines if line.startswith("grandchild"))


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_output_goes_to_the_log_and_to_the_line_callback(tmp_path):
    lines = []
    code = (
        "import sys; print('first'); sys.stdout.write('10%\\r50%\\r100%\\n');"
        " print('oops', file=sys.stderr); sys.exit(3)"
    )
    returncode = run_logged(
        python(code), tmp_path / "log.txt", dict(os.environ), tmp_path, on_line=lines.append
    )
    assert returncode == 3
    assert lines == ["first", "10%", "50%", "100%", "oops"]
    assert tail(tmp_path / "log.txt") == "first\n100%\noops"
    assert tail(tmp_path / "log.txt", lines=1) == "oops"


def test_timeout_stops_the_whole_process_group(tmp_path):
    lines = []
    started = time.monotonic()
    with pytest.raises(ProcessTimeout):
        run_logged(python(HANGING_PARENT), tmp_path / "log", dict(os.environ), tmp_path, 3, lines.append)
    assert time.monotonic() - started < 30
    assert gone(grandchild_pid(lines))


def test_interrupt_stops_the_whole_process_group(tmp_path):
    lines = []
    timer = threading.Timer(3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_logged(python(HANGING_PARENT), tmp_path / "log", dict(os.environ), tmp_path, 60, lines.append)
    finally:
        timer.cancel()
    assert gone(grandchild_pid(lines))


def test_interrupt_while_the_child_starts_still_stops_it(tmp_path, monkeypatch):
    """Ctrl-C after the fork but before Popen returns: the child must not be left running."""
    children = []

    class InterruptedWhileStarting(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            children.append(self.pid)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the signal is handled here, inside Popen's construction

    monkeypatch.setattr(subprocess, "Popen", InterruptedWhileStarting)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_logged(python(SLEEPER), tmp_path / "log", dict(os.environ), tmp_path, 60)
        assert gone(children[0])
    finally:
        for pid in children:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_leftovers_of_a_finished_command_are_stopped(tmp_path):
    lines = []
    started = time.monotonic()
    assert (
        run_logged(python(FINISHING_PARENT), tmp_path / "log", dict(os.environ), tmp_path, 60, lines.append)
        == 0
    )
    assert gone(grandchild_pid(lines))
    assert time.monotonic() - started < 30
