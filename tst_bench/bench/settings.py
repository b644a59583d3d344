"""The `tst-bench` pytest options: one table gives the command-line flag, the ini key and the parser.

A command-line value wins over the ini file, which wins over the default. Run defaults (model,
backend, trainer, folds) are RunConfig's; `run_config` turns the settings into the RunConfig a
benchmark runs. Defaults scale with the machine: with CUDA GPUs the 0.5B-shaped model leads the
model list and speedup counts GPUs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from ..config import RunConfig
from ..errors import InputError
from ..memory import DEFAULT_TOLERANCE_MIB
from ..registry import BACKENDS, TRAINERS
from ..sweep.grid import configuration_name, expand, parse_grid_flags

DEFAULT_DATASETS = ("synthetic:shortcut", "synthetic:control")
CPU_MODELS = (RunConfig.model,)
#: On a GPU machine the model in a real 0.5B model's shape leads (speed and memory figures).
GPU_MODELS = ("random-qwen2-0.5b", RunConfig.model)
DEFAULT_CPU_WORKERS = 2
DEFAULT_REPORT_DIR = "reports"


@dataclass(frozen=True)
class OptionSpec:
    name: str  # ini key is tst_<name>, flag is --tst-<name with dashes>
    kind: str  # list | grid | int | float | path | str | flag
    help: str
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--tst-" + self.name.replace("_", "-")

    @property
    def key(self) -> str:
        return "tst_" + self.name


OPTIONS = (
    OptionSpec(
        "model", "list", "model(s) to benchmark: tiny, random-qwen2-0.5b, a directory or hub id", "NAME"
    ),
    OptionSpec(
        "dataset", "list", "dataset(s): synthetic:KIND[?rows=N] or a .jsonl/.json/.csv/.parquet file", "SPEC"
    ),
    OptionSpec("backend", "list", f"backend(s): {', '.join(BACKENDS)} (default {RunConfig.backend})", "NAME"),
    OptionSpec("trainer", "list", f"trainer(s): {', '.join(TRAINERS)} (default {RunConfig.trainer})", "NAME"),
    OptionSpec("folds", "int", f"folds per TsT run (default {RunConfig.folds})", "K"),
    OptionSpec("gpus", "int", "GPUs to use; for Ray on a CPU machine, logical GPUs to declare", "N"),
    OptionSpec("workers", "int", "fold workers (speedup counts 1..N workers)", "N"),
    OptionSpec(
        "memory_tolerance_mib",
        "float",
        f"memory allowed above the baseline after each fold's clean-up (default {DEFAULT_TOLERANCE_MIB:g})",
        "MIB",
    ),
    OptionSpec("results", "path", "directory for run outputs and one tst_record.json per TsT run", "DIR"),
    OptionSpec(
        "inject_leak",
        "float",
        "keep a tensor of MIB alive per fold in every TsT run (proves the memory check fails)",
        "MIB",
    ),
    OptionSpec(
        "report",
        "path",
        "directory for the report written at the end of the session, report.md + report.html"
        " (default reports/; 'none' writes none)",
        "DIR",
    ),
    OptionSpec("ray_address", "str", "join this Ray cluster instead of starting a local one", "ADDRESS"),
    OptionSpec(
        "grid",
        "grid",
        "a trainer option (or predictor option) and its values: every tst_runner benchmark runs once"
        " per combination of the grid's values (values are YAML; in the ini: space separated)",
        "KEY=V1,V2",
    ),
    OptionSpec("skip_slow", "flag", "skip tests marked slow"),
    OptionSpec(
        "full", "flag", "also run the benchmarks marked heavy (minutes each on a CPU; make bench-full)"
    ),
)


@dataclass(frozen=True)
class TsTSettings:
    models: tuple[str, ...]
    datasets: tuple[str, ...]
    backends: tuple[str, ...]
    trainers: tuple[str, ...]
    folds: int
    gpus: int | None
    workers: int | None
    memory_tolerance_mib: float
    results: Path | None
    report: Path | None
    inject_leak: float
    ray_address: str | None
    skip_slow: bool
    full: bool = False  # run the benchmarks marked heavy too
    #: the configurations of --tst-grid (every combination), parametrizing tst_runner (bench/selection.py)
    grid: tuple[dict[str, Any], ...] = ()
    gpu_count: int = 0  # CUDA GPUs discovered through NVML, before --tst-gpus caps it
    given: frozenset[str] = field(default_factory=frozenset)  # options set on the command line or ini

    @property
    def usable_gpus(self) -> int:
        return self.gpu_count if self.gpus is None else min(self.gpus, self.gpu_count)

    @property
    def speedup_unit(self) -> str:
        """'gpus' on a GPU machine unless workers were asked for; 'workers' otherwise."""
        return "gpus" if self.usable_gpus and "workers" not in self.given else "workers"

    @property
    def speedup_counts(self) -> list[int]:
        top = self.usable_gpus if self.speedup_unit == "gpus" else self.workers or DEFAULT_CPU_WORKERS
        return list(range(1, top + 1))


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("tst-bench", "Test-set Stress-Test benchmarks (tst-bench)")
    for spec in OPTIONS:
        if spec.kind == "flag":
            group.addoption(spec.flag, action="store_true", default=None, dest=spec.key, help=spec.help)
            parser.addini(spec.key, spec.help, type="bool", default=False)
        elif spec.kind in ("list", "grid"):
            group.addoption(
                spec.flag,
                action="append",
                dest=spec.key,
                metavar=spec.metavar,
                help=spec.help + " (repeatable)",
            )
            parser.addini(spec.key, spec.help + " (space separated)", type="args", default=[])
        else:
            group.addoption(spec.flag, dest=spec.key, metavar=spec.metavar, help=spec.help)
            parser.addini(spec.key, spec.help, type="string", default="")


def _split(values: list[str]) -> tuple[str, ...]:
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _number(cast: Callable[[str], Any], minimum: float) -> Callable[[str, str], Any]:
    def parse(text: str, where: str) -> Any:
        try:
            value = cast(str(text).strip())
        except ValueError:
            raise pytest.UsageError(f"{where} expects a number, got {text!r}") from None
        if value < minimum:
            raise pytest.UsageError(f"{where} must be at least {minimum:g}, got {text}")
        return value

    return parse


def grid_points(pairs: list[str], where: str) -> tuple[dict[str, Any], ...]:
    """--tst-grid's KEY=V1,V2 pairs as their configurations, every combination of the values."""
    try:
        return tuple(expand(parse_grid_flags(pairs)))
    except InputError as error:
        raise pytest.UsageError(f"{where}: {error}") from None


def _path(value: Any) -> Path | None:
    """An absolute path; 'none' (any case) means none."""
    text = str(value).strip()
    return None if text.lower() == "none" else Path(text).expanduser().resolve()


LIMITS = {"folds": (int, 2), "gpus": (int, 0), "workers": (int, 1)}


def _raw_value(config: pytest.Config, spec: OptionSpec) -> tuple[Any, str] | None:
    """(value, where it came from) or None when neither the command line nor the ini sets it."""
    cli = config.getoption(spec.key)
    if cli not in (None, [], ""):
        return cli, spec.flag
    ini = config.getini(spec.key)
    if spec.kind == "flag":
        return (True, spec.key) if ini else None
    if ini in (None, [], ""):
        return None
    if spec.kind == "path" and config.inipath is not None and _path(ini) is not None:
        return str(Path(config.inipath).parent / str(ini)), f"ini {spec.key}"
    return ini, f"ini {spec.key}"


def resolve_settings(config: pytest.Config, gpu_count: int) -> TsTSettings:
    values: dict[str, Any] = {}
    for spec in OPTIONS:
        raw = _raw_value(config, spec)
        if raw is None:
            continue
        value, where = raw
        if spec.kind == "list":
            values[spec.name] = _split([value] if isinstance(value, str) else list(value))
        elif spec.kind == "grid":  # KEY=V1,V2 pairs: their commas separate values, not options
            values[spec.name] = grid_points([value] if isinstance(value, str) else list(value), where)
        elif spec.kind == "int":
            cast, minimum = LIMITS[spec.name]
            values[spec.name] = _number(cast, minimum)(value, where)
        elif spec.kind == "float":
            values[spec.name] = _number(float, 0)(value, where)
        elif spec.kind == "path":
            values[spec.name] = _path(value)
        elif spec.kind == "flag":
            values[spec.name] = bool(value)
        else:
            values[spec.name] = str(value)
    return TsTSettings(
        models=values.get("model") or (GPU_MODELS if gpu_count else CPU_MODELS),
        datasets=values.get("dataset") or DEFAULT_DATASETS,
        backends=values.get("backend") or (RunConfig.backend,),
        trainers=values.get("trainer") or (RunConfig.trainer,),
        folds=values.get("folds", RunConfig.folds),
        gpus=values.get("gpus"),
        workers=values.get("workers"),
        memory_tolerance_mib=values.get("memory_tolerance_mib", DEFAULT_TOLERANCE_MIB),
        results=values.get("results"),
        report=values.get("report", _path(Path(config.invocation_params.dir) / DEFAULT_REPORT_DIR)),
        inject_leak=values.get("inject_leak", 0.0),
        ray_address=values.get("ray_address"),
        skip_slow=values.get("skip_slow", False),
        full=values.get("full", False),
        grid=values.get("grid", ()),
        gpu_count=gpu_count,
        given=frozenset(values),
    )


def run_config(settings: TsTSettings, **overrides: Any) -> RunConfig:
    """The RunConfig a benchmark runs: the session's first dataset, model, backend and trainer and
    its folds, then `overrides` (an override of None keeps the session's value)."""
    base = RunConfig(
        dataset=settings.datasets[0],
        model=settings.models[0],
        backend=settings.backends[0],
        trainer=settings.trainers[0],
        folds=settings.folds,
    )
    return replace(base, **{key: value for key, value in overrides.items() if value is not None})


def describe(settings: TsTSettings) -> str:
    """The header line pytest prints: what this session will benchmark."""
    parts = [
        f"models={','.join(settings.models)}",
        f"datasets={','.join(settings.datasets)}",
        f"backends={','.join(settings.backends)}",
        f"trainers={','.join(settings.trainers)}",
        f"folds={settings.folds}",
        f"gpus={settings.usable_gpus}",
        f"memory tolerance={settings.memory_tolerance_mib:g} MiB",
    ]
    if settings.grid:
        parts.append(f"grid={' '.join(configuration_name(point) for point in settings.grid)}")
    if settings.inject_leak:
        parts.append(f"INJECTED LEAK {settings.inject_leak:g} MiB/fold")
    if settings.results:
        parts.append(f"results={settings.results}")
    parts.append(f"report={settings.report or 'none'}")
    parts.append("heavy=run" if settings.full else "heavy=skipped (--tst-full runs them)")
    return "tst-bench: " + " ".join(parts)
