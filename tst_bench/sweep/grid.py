"""A sweep's grid: which configurations it runs, read from `--grid KEY=V1,V2` and a YAML grid file.

A configuration is a set of option values. The grid is the cartesian product of every key's values,
in the order the keys were given; a grid file may also list configurations outright (`configs:`),
the hand-picked variants a sweep around a promising region adds (tied values such as
`lora_alpha` = 2 x `lora_rank` are written that way). Values are YAML, as `--trainer-option`'s.
Nothing here knows which engine a key belongs to: sweep/configurations.py routes and checks keys.

    grid:                      # a grid file; a mapping without `grid:`/`configs:` is all grid
      learning_rate: [1e-4, 3e-4]
      lora_rank: [8, 16]
    configs:
      - {learning_rate: 8e-4, lora_rank: 8, lora_alpha: 16}
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError

#: the two sections a grid file may have; any other top-level key makes the whole file the grid
FILE_SECTIONS = ("grid", "configs")
#: characters a configuration's folder name keeps; others become "_"
NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._+=,-]")
#: a folder name longer than this is cut and ends with a hash of the options
NAME_LIMIT = 96

Options = dict[str, Any]


def parse_grid_flags(pairs: Sequence[str]) -> dict[str, list[Any]]:
    """`--grid KEY=V1,V2,...` flags as key -> values (commas inside [...] or {...} do not split)."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"--grid expects KEY=V1,V2,..., got {pair!r}")
        if key in grid:
            raise InputError(f"--grid {key}: given twice; list every value in one --grid {key}=V1,V2")
        grid[key] = [parse_value(key, part) for part in split_values(key, text)]
    return grid


def split_values(key: str, text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for character in text:
        if character in "[{":
            depth += 1
        elif character in "]}":
            depth -= 1
        if character == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(character)
    parts.append("".join(current))
    if depth != 0:
        raise InputError(f"--grid {key}: unbalanced brackets in {text!r}")
    if any(not part.strip() for part in parts):
        raise InputError(f"--grid {key}: an empty value in {text!r}; write the values as V1,V2,...")
    return parts


def parse_value(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError(f"--grid {key}: cannot parse {text!r}: {error}") from None


def read_grid_file(path: Path) -> tuple[dict[str, list[Any]], list[Options]]:
    """A grid file's grid (key -> values) and its listed configurations."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"--grid-file {path}: cannot read it: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise InputError(f"--grid-file {path}: not YAML: {error}") from None
    if document is None:
        raise InputError(f"--grid-file {path}: empty; give a mapping of option -> values")
    if not isinstance(document, dict):
        raise InputError(
            f"--grid-file {path}: expected a mapping of option -> values, got {type_of(document)}"
        )
    sectioned = set(document) <= set(FILE_SECTIONS)
    grid_part = document.get("grid") if sectioned else document
    listed = document.get("configs") if sectioned else None
    return file_grid(path, grid_part or {}), file_configs(path, listed or [])


def file_grid(path: Path, grid: Any) -> dict[str, list[Any]]:
    if not isinstance(grid, dict):
        raise InputError(
            f"--grid-file {path}: 'grid' must be a mapping of option -> values, got {type_of(grid)}"
        )
    values = {}
    for key, entry in grid.items():
        listed = entry if isinstance(entry, list) else [entry]
        if not listed:
            raise InputError(f"--grid-file {path}: key {key!r}: no values")
        values[str(key)] = listed
    return values


def file_configs(path: Path, listed: Any) -> list[Options]:
    if not isinstance(listed, list):
        raise InputError(f"--grid-file {path}: 'configs' must be a list of mappings, got {type_of(listed)}")
    configs = []
    for number, entry in enumerate(listed, start=1):
        if not isinstance(entry, dict) or not entry:
            raise InputError(
                f"--grid-file {path}: configs entry {number}: expected a mapping of option -> value,"
                f" got {entry!r}"
            )
        configs.append({str(key): value for key, value in entry.items()})
    return configs


def type_of(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def merge_grids(flags: dict[str, list[Any]], from_file: dict[str, list[Any]]) -> dict[str, list[Any]]:
    both = sorted(set(flags) & set(from_file))
    if both:
        raise InputError(f"grid key(s) {both} are given by --grid and by --grid-file; keep one")
    return {**flags, **from_file}


def expand(grid: dict[str, list[Any]], listed: Sequence[Options] = ()) -> list[Options]:
    """The grid's configurations (cartesian product, first key slowest), then the listed ones;
    a configuration given twice runs once."""
    product = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    unique: dict[str, Options] = {}
    for options in [*product, *listed] if grid else list(listed):
        unique.setdefault(canonical(options), options)
    if not unique:
        raise InputError("a sweep needs a grid: give --grid KEY=V1,V2 or --grid-file FILE")
    return list(unique.values())


def canonical(options: Options) -> str:
    return json.dumps(options, sort_keys=True, default=str)


def configuration_name(options: Options) -> str:
    """A configuration's folder name, from its options: `learning_rate=0.003,lora_rank=8`."""
    text = ",".join(f"{key}={format_value(value)}" for key, value in options.items())
    name = NAME_CHARACTERS.sub("_", text)
    if len(name) > NAME_LIMIT:
        digest = hashlib.sha256(canonical(options).encode()).hexdigest()[:10]
        name = f"{name[: NAME_LIMIT - 11]}~{digest}"
    return name


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(",", ":"))
