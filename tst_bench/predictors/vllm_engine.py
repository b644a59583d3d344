"""The life cycle of one vLLM engine: built on first use, asleep while another process trains,
torn down completely (engine processes, distributed state, caches) so it can be built again.

vLLM runs its engine core and model workers in spawned processes. Spawned children normally
re-import the parent's `__main__`; a user script without an `if __name__ == "__main__":` guard
would then run again inside every engine process. The build hides `__main__` from
multiprocessing (nothing vLLM sends to its processes lives there), so the engine starts the same
from the CLI, from pytest and from plain scripts. vLLM's CPU platform also rewrites the
environment of this process (LD_PRELOAD, thread settings) for its children; those changes are
undone once the engine is up, so later subprocesses (e.g. a LlamaFactory trainer in another
venv) start from the user's environment.

Every build, sleep, wake-up and teardown is timed (`take_events`), so a fold's timings show what
the hand-off cost. Before a build or a wake-up this process hands its cached CUDA blocks back (an
in-process trainer leaves its activations cached there), so the engine finds them free.
With compilation on (`enforce_eager=false`), a rebuild with the same arguments reuses vLLM's
compile cache (`$VLLM_CACHE_ROOT`, by default ~/.cache/vllm, `torch_compile_cache/<hash of the
engine configuration>`): only the first build of a configuration on a machine compiles.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import TsTRuntimeError

if TYPE_CHECKING:
    from vllm import LLM

logger = logging.getLogger(__name__)

#: Sleep level 1 moves the weights to host memory and drops the KV cache; level 2 drops the
#: weights too and needs them reloaded, which vLLM cannot do with LoRA enabled (vLLM issue 39934).
SLEEP_LEVEL = 1


class VLLMEngine:
    """One `vllm.LLM`, created lazily from `engine_args` and rebuilt on demand after `shutdown`."""

    def __init__(
        self,
        engine_args: dict[str, Any],
        platform: str,
        sleep_mode: bool = False,
        cuda_visible_devices: str | None = None,
        shutdown_timeout_s: float = 30.0,
    ):
        self.engine_args = engine_args
        self.platform = platform
        self.sleep_mode = sleep_mode
        self.cuda_visible_devices = cuda_visible_devices
        self.shutdown_timeout_s = shutdown_timeout_s
        self.sleep_level = SLEEP_LEVEL
        self.builds = 0
        self.asleep = False
        self._llm: LLM | None = None
        self._processes: list = []
        self._events: dict[str, float] = {}

    @property
    def running(self) -> bool:
        return self._llm is not None

    @property
    def awake(self) -> bool:
        return self._llm is not None and not self.asleep

    @property
    def process_ids(self) -> list[int]:
        """The engine's own processes (engine core, model workers) while it runs."""
        return [process.pid for process in self._processes]

    def take_events(self) -> dict[str, float]:
        """Seconds spent building, sleeping, waking and tearing down since the last call."""
        events, self._events = self._events, {}
        return events

    def llm(self) -> LLM:
        """The engine, built or woken up first if needed."""
        if self._llm is None:
            self._llm = self._build()
        elif self.asleep:
            self._wake_up(self._llm)
        return self._llm

    def sleep(self) -> bool:
        """Free the device memory but keep the engine (vLLM sleep level 1); False if not enabled."""
        if not self.sleep_mode or self._llm is None:
            return False
        if not self.asleep:
            started = time.perf_counter()
            self._llm.sleep(level=self.sleep_level)
            self.asleep = True
            seconds = self._count("engine_sleep", started)
            logger.info("vLLM engine asleep in %.1fs (level %d)", seconds, self.sleep_level)
        return True

    def _wake_up(self, llm: LLM) -> None:
        started = time.perf_counter()
        hand_back_cached_device_memory()
        try:
            llm.wake_up()
        except Exception as error:  # out of device memory, a dead engine core: say what failed
            raise TsTRuntimeError(
                f"the vLLM engine for {self.engine_args.get('model')} could not wake up:"
                f" {type(error).__name__}: {error}"
            ) from error
        self.asleep = False
        logger.info("vLLM engine woken up in %.1fs", self._count("engine_wake", started))

    def _count(self, event: str, started: float) -> float:
        seconds = time.perf_counter() - started
        self._events[event] = self._events.get(event, 0.0) + seconds
        return seconds

    def shutdown(self) -> None:
        """Stop the engine processes, drop distributed state and caches; idempotent."""
        llm, self._llm = self._llm, None
        self.asleep = False
        if llm is None:
            return
        started = time.perf_counter()
        try:
            llm.llm_engine.engine_core.shutdown(timeout=self.shutdown_timeout_s)
        except Exception as error:  # a dead or half-started engine must not block the clean-up
            logger.warning("vLLM engine shutdown raised %s: %s", type(error).__name__, error)
        del llm
        gc.collect()
        _cleanup_distributed_state()
        _reap(self._processes, self.shutdown_timeout_s)
        self._processes = []
        logger.info("vLLM engine shut down in %.1fs", self._count("engine_teardown", started))

    def _build(self) -> LLM:
        started = time.perf_counter()
        hand_back_cached_device_memory()
        with engine_environment(self.cuda_visible_devices):
            from vllm import LLM

            before = _descendants()
            try:
                llm = LLM(**self.engine_args)
            except Exception as error:
                _reap([p for p in _descendants() if p not in before], self.shutdown_timeout_s)
                raise TsTRuntimeError(
                    f"the vLLM engine for {self.engine_args.get('model')} failed to start:"
                    f" {type(error).__name__}: {error}"
                ) from error
            self._processes = [p for p in _descendants() if p not in before]
        self.builds += 1
        logger.info(
            "vLLM engine up in %.1fs (build %d, processes %s)",
            self._count("engine_build", started),
            self.builds,
            self.process_ids,
        )
        return llm


@contextlib.contextmanager
def engine_environment(cuda_visible_devices: str | None = None) -> Iterator[None]:
    """Environment for starting the engine's processes; this process gets its own back after."""
    saved = dict(os.environ)
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if not logging.getLogger("tst_bench").isEnabledFor(logging.DEBUG):
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    if cuda_visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    try:
        with _main_module_hidden():
            yield
    finally:
        _restore_environ(saved)


def hand_back_cached_device_memory() -> None:
    """Return this process's cached CUDA blocks to the driver, where CUDA is in use here at all
    (asking torch otherwise would create a CUDA context this process does not need)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def vllm_platform() -> str:
    """The device type this vLLM build runs on ("cpu", "cuda", ...)."""
    from vllm.platforms import current_platform

    return str(current_platform.device_type)


def sleep_mode_available() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_sleep_mode_available())


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Keep spawned processes from re-running the parent's `__main__` (see the module docstring)."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _restore_environ(saved: dict[str, str]) -> None:
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _descendants() -> list:
    """This process's children and their children, except multiprocessing's resource tracker,
    which lives as long as this process and is shared by everything in it."""
    import psutil

    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "resource_tracker" not in " ".join(process.cmdline()):
                found.append(process)
    return found


def _reap(processes: list, timeout_s: float) -> None:
    """Wait for the engine's processes to exit; terminate, then kill, those that do not."""
    import psutil

    if not processes:
        return
    _, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for signal_name, method in (("SIGTERM", "terminate"), ("SIGKILL", "kill")):
        if not alive:
            return
        logger.warning("vLLM processes %s still running; sending %s", [p.pid for p in alive], signal_name)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                getattr(process, method)()
        _, alive = psutil.wait_procs(alive, timeout=5)


def _cleanup_distributed_state() -> None:
    """Destroy vLLM's process groups in this process (present when the engine ran in-process)
    and empty the accelerator caches."""
    try:
        from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

        cleanup_dist_env_and_memory()
    except Exception as error:  # clean-up is best effort; the engine processes are gone anyway
        logger.warning("vLLM distributed clean-up raised %s: %s", type(error).__name__, error)
