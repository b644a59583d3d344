"""A sweep's configurations as runs: each grid key routed to the trainer's or the predictor's
options, and every configuration checked the way `tst-bench run` checks its options, before any work.

A key is a trainer option (`--trainer-option`), or a predictor option (`--predictor-option`) where
the trainer has no such field and the predictor does; `trainer.KEY` / `predictor.KEY` say which
outright. Whether an engine has a field is asked of the engine itself (its config refuses unknown
options with `UnknownOptionsError`), so a key is valid exactly when `tst-bench run` would take it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..config import RunConfig
from ..engine import check_engines
from ..errors import InputError, UnknownOptionsError
from ..models import ModelSource
from .grid import Options, canonical, configuration_name, format_value

Place = Literal["trainer", "predictor"]
PLACES: tuple[Place, ...] = ("trainer", "predictor")


@dataclass(frozen=True)
class Configuration:
    """One point of the grid: its options as the grid names them and the run they make."""

    name: str
    options: Options
    run: RunConfig

    def with_out(self, out: Path, **changes: Any) -> RunConfig:
        return dataclasses.replace(self.run, out=out, **changes)


def resolve_configurations(
    base: RunConfig, source: ModelSource, points: Sequence[Options]
) -> list[Configuration]:
    """Every grid point as a checked run (the base run with the point's options); an InputError
    names the key, the value and the configuration at fault."""
    places: dict[str, Place] = {}
    for point in points:
        for key, value in point.items():
            if key not in places:  # a key's place does not depend on its value
                places[key] = place_of(base, source, key, value)
    configurations = []
    for point in points:
        run = run_of(base, point, places)
        try:
            check_engines(run, source)
        except InputError as error:
            listed = ", ".join(f"{key}={format_value(value)}" for key, value in point.items())
            raise InputError(f"grid configuration {listed}: {error}") from None
        configurations.append(Configuration(configuration_name(point), point, run))
    return with_unique_names(configurations)


def place_of(base: RunConfig, source: ModelSource, key: str, value: Any) -> Place:
    """Where a grid key goes (`route`), refused where the base run already sets that option."""
    place = route(base, source, key, value)
    check_not_given(base, place, field_of(key), key)
    return place


def route(base: RunConfig, source: ModelSource, key: str, value: Any) -> Place:
    """Named outright, or the first engine whose config has the field."""
    named = named_place(key)
    if named is not None:
        return named
    refusals = []
    for place in PLACES:
        try:
            check_engines(with_option(base, place, key, value), source)
        except UnknownOptionsError as error:
            if key in error.names:
                refusals.append(f"{place}: {error}")
                continue
        except InputError:
            pass  # the field exists; its value is checked per configuration
        return place
    raise InputError(
        f"grid key {key!r} is neither a trainer nor a predictor option of --backend {base.backend}"
        f" --trainer {base.trainer} ({'; '.join(refusals)})"
    )


def with_point(run: RunConfig, source: ModelSource, point: Options) -> RunConfig:
    """`run` with a grid point's options, which replace any the run sets itself (how the pytest
    plugin's --tst-grid applies to a benchmark's own options), checked."""
    for key, value in point.items():
        run = with_option(run, route(run, source, key, value), field_of(key), value)
    check_engines(run, source)
    return run


def named_place(key: str) -> Place | None:
    prefix, dot, _ = key.partition(".")
    if not dot:
        return None
    return "trainer" if prefix == "trainer" else "predictor" if prefix == "predictor" else None


def field_of(key: str) -> str:
    """The engine option a grid key sets: the key without its `trainer.` / `predictor.`."""
    return key.partition(".")[2] if named_place(key) else key


def check_not_given(base: RunConfig, place: Place, field: str, key: str) -> None:
    if field in options_of(base, place):
        raise InputError(
            f"grid key {key!r} is also given as --{place}-option {field}=...; the grid sets it for"
            " every configuration, so drop one"
        )


def options_of(run: RunConfig, place: Place) -> dict[str, Any]:
    return run.trainer_options if place == "trainer" else run.predictor_options


def with_option(run: RunConfig, place: Place, field: str, value: Any) -> RunConfig:
    options = {**options_of(run, place), field: value}
    return dataclasses.replace(run, **{f"{place}_options": options})


def run_of(base: RunConfig, point: Options, places: dict[str, Place]) -> RunConfig:
    run = base
    for key, value in point.items():
        run = with_option(run, places[key], field_of(key), value)
    return run


def with_unique_names(configurations: list[Configuration]) -> list[Configuration]:
    """Folder names that cleaning made equal get a hash of their options each."""
    counts: dict[str, int] = {}
    for configuration in configurations:
        counts[configuration.name] = counts.get(configuration.name, 0) + 1
    return [
        dataclasses.replace(configuration, name=f"{configuration.name}~{digest(configuration.options)}")
        if counts[configuration.name] > 1
        else configuration
        for configuration in configurations
    ]


def digest(options: Options) -> str:
    return hashlib.sha256(canonical(options).encode()).hexdigest()[:10]
