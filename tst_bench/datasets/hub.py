"""`hf:OWNER/NAME[?split=S&config=C&revision=R&format=F&file=PATH]` dataset specs.

The split's files are found in the repository listing (or the local Hugging Face cache when the
hub cannot be reached), downloaded with huggingface_hub and mapped row by row: with the
repository's benchmark mapper (CV-Bench, VSI-Bench, MMMU, Video-MME, or the one `format=`
names), else as generic rows. `file=PATH` reads a local file, or a folder laid out like the
repository, in the hub's schema instead, which is how hub datasets are used offline.
"""

from __future__ import annotations

import fnmatch
import os
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, urlparse

from ..errors import InputError, row_error
from ..schemas import QARecord
from .benchmarks import BENCHMARKS, HubBenchmark, benchmark_for
from .readers import SUFFIXES, read_rows
from .rows import DEFAULT_GROUP_COLUMNS, DEFAULT_RULES, RowError, RowRules, row_to_record

_PARAMETERS = ("split", "config", "revision", "format", "file")
_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class HubSpec:
    repo: str
    split: str
    config: str | None
    revision: str | None
    benchmark: HubBenchmark | None
    file: Path | None

    @property
    def name(self) -> str:
        parts = [f"hf:{self.repo}", f"split={self.split}"]
        if self.config:
            parts.append(f"config={self.config}")
        return " ".join(parts)


def parse_hub_spec(spec: str) -> HubSpec:
    repo, _, query = spec.removeprefix("hf:").partition("?")
    repo = repo.strip().strip("/")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise InputError(f"{spec}: expected hf:OWNER/NAME (e.g. hf:nyu-visionx/CV-Bench)")
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _PARAMETERS:
            raise InputError(f"{spec}: unknown parameter {key!r}; known: {', '.join(_PARAMETERS)}")
        params[key] = value
    declared = params.get("format")
    if declared is not None and declared not in BENCHMARKS:
        raise InputError(f"{spec}: unknown format {declared!r}; choose one of {', '.join(BENCHMARKS)}")
    benchmark = benchmark_for(repo, declared)
    file = Path(params["file"]).expanduser() if params.get("file") else None
    if file is not None and not file.exists():
        raise InputError(f"{spec}: file={file} not found")
    return HubSpec(
        repo=repo,
        split=params.get("split") or (benchmark.split if benchmark else "test"),
        config=params.get("config") or (benchmark.config if benchmark else None),
        revision=params.get("revision") or None,
        benchmark=benchmark,
        file=file,
    )


def load_hub_records(
    spec: str,
    group_columns: Sequence[str] = DEFAULT_GROUP_COLUMNS,
    rules: RowRules = DEFAULT_RULES,
) -> tuple[str, Iterator[QARecord]]:
    """The dataset's name and its records over the split's files, read as they are taken; group
    columns default to the benchmark's own."""
    hub = parse_hub_spec(spec)
    if hub.benchmark is not None and tuple(group_columns) == DEFAULT_GROUP_COLUMNS:
        group_columns = hub.benchmark.group_columns
    files = _local_files(hub) if hub.file is not None else _hub_files(hub)
    return hub.name, _records(files, hub.benchmark, group_columns, rules)


def _records(
    files: Sequence[Path],
    benchmark: HubBenchmark | None,
    group_columns: Sequence[str],
    rules: RowRules,
) -> Iterator[QARecord]:
    columns = benchmark.columns if benchmark else None
    for path in files:
        for row_number, row in read_rows(path, columns):
            yield _record(row, row_number, str(path), benchmark, group_columns, rules)


def select_files(paths: Sequence[str], split: str, config: str | None) -> list[str]:
    """The files of one split (and config) in a repository listing, of the preferred type.

    A file belongs to split S when its name is S.<ext> or S-<shard>.<ext>; with a config C it
    must also sit under a folder named C (the hub's layout for configs, e.g. MMMU/<Subject>/).
    """
    matches = []
    for path in paths:
        pure = PurePosixPath(path)
        stem = pure.name[: -len(pure.suffix)] if pure.suffix else pure.name
        if pure.suffix.lower() not in SUFFIXES:
            continue
        if not (stem == split or fnmatch.fnmatch(stem, f"{split}-*")):
            continue
        if config is not None and config not in pure.parts[:-1]:
            continue
        matches.append(path)
    for suffix in SUFFIXES:
        chosen = sorted(path for path in matches if path.lower().endswith(suffix))
        if chosen:
            return chosen
    return []


def _local_files(hub: HubSpec) -> list[Path]:
    assert hub.file is not None
    if hub.file.is_file():
        return [hub.file]
    listing = [str(path.relative_to(hub.file)) for path in hub.file.rglob("*") if path.is_file()]
    chosen = select_files(listing, hub.split, hub.config)
    if not chosen:
        raise InputError(f"{hub.file}: no {hub.split!r} split files in this folder{_config_hint(hub)}")
    return [hub.file / path for path in chosen]


def _hub_files(hub: HubSpec) -> list[Path]:
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    try:
        _check_reachable()
        listing = HfApi().list_repo_files(hub.repo, repo_type="dataset", revision=hub.revision)
    except Exception as error:  # offline, DNS, proxy, HTTP errors: all mean "not from the hub"
        try:
            cached = Path(
                snapshot_download(hub.repo, repo_type="dataset", revision=hub.revision, local_files_only=True)
            )
        except Exception:
            raise InputError(_unreachable_message(hub, error)) from None
        listing = [str(path.relative_to(cached)) for path in cached.rglob("*") if path.is_file()]
        chosen = select_files(listing, hub.split, hub.config)
        if not chosen:
            raise InputError(_unreachable_message(hub, error)) from None
        return [cached / path for path in chosen]
    chosen = select_files(listing, hub.split, hub.config)
    if not chosen:
        raise InputError(
            f"hf:{hub.repo}: no files for split {hub.split!r}{_config_hint(hub)} in the repository"
            f" (it has {len(listing)} files); pass split=... or config=..."
        )
    try:
        return [
            Path(hf_hub_download(hub.repo, path, repo_type="dataset", revision=hub.revision))
            for path in chosen
        ]
    except Exception as error:
        raise InputError(_unreachable_message(hub, error)) from None


def _check_reachable() -> None:
    """Fail in seconds, not after the client's minute of retries, when the hub's host is unknown."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ConnectionError("HF_HUB_OFFLINE is set")
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # the proxy decides what is reachable
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    with socket.create_connection((host, 443), timeout=_PROBE_TIMEOUT_S):
        pass


def _unreachable_message(hub: HubSpec, error: Exception) -> str:
    reason = (
        f"{type(error).__name__}: {str(error).splitlines()[0][:160]}" if str(error) else type(error).__name__
    )
    return (
        f"hf:{hub.repo}: cannot fetch split {hub.split!r}{_config_hint(hub)} from the Hugging Face hub"
        f" and it is not in the local cache ({reason}). Offline, download the split's files elsewhere"
        f" and pass hf:{hub.repo}?file=PATH (a file, or a folder in the repository's layout)"
    )


def _config_hint(hub: HubSpec) -> str:
    return f" (config {hub.config!r})" if hub.config else ""


def _record(
    row: Any,
    row_number: int,
    source: str,
    benchmark: HubBenchmark | None,
    group_columns: Sequence[str],
    rules: RowRules,
) -> QARecord:
    if benchmark is None:
        return row_to_record(row, row_number, source, group_columns, rules)
    if not isinstance(row, dict):
        raise row_error(source, row_number, None, f"expected an object, got {type(row).__name__}")
    try:
        mapped = benchmark.to_row(row)
    except RowError as error:
        raise row_error(source, row_number, error.field, f"{benchmark.name}: {error.message}") from None
    return row_to_record(mapped, row_number, source, group_columns, rules)
