"""JSON Lines of pydantic models, written atomically so a crash never leaves a partial file."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import InputError

ModelT = TypeVar("ModelT", bound=BaseModel)


#: What a plain open() asks for; the umask takes its bits off, so colleagues read what we write.
FILE_MODE = 0o666


def create_beside(path: Path) -> tuple[int, str]:
    """A new, exclusively created temporary file next to `path`: (descriptor, name).

    Unlike `tempfile.mkstemp` (always 0600) it gets the mode a plain open() gives under the umask.
    """
    while True:
        name = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), name
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Write to a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = create_beside(path)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_json(path: str | Path, data: BaseModel | dict | list) -> None:
    """Atomically write one JSON document (a model or plain data), indented for people."""
    text = data.model_dump_json(indent=2) if isinstance(data, BaseModel) else json.dumps(data, indent=2)
    with atomic_write(path) as handle:
        handle.write(text + "\n")


class PydanticJSONLinesWriter:
    """Writes models one per line; the file appears only once every line is written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def write_batch(self, items: Iterable[BaseModel]) -> int:
        count = 0
        with atomic_write(self.path) as handle:
            for item in items:
                handle.write(item.model_dump_json() + "\n")
                count += 1
        return count


class PydanticJSONLinesReader(Generic[ModelT]):
    """Reads a JSONL file back into models; a bad line is an InputError naming its line."""

    def __init__(self, path: str | Path, model: type[ModelT]):
        self.path = Path(path)
        self.model = model

    def __call__(self) -> Iterator[ModelT]:
        with self.path.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield self.model.model_validate_json(line)
                except ValidationError as error:
                    raise InputError(f"{self.path}: line {line_number}: {error}") from error

    def read_all(self) -> list[ModelT]:
        return list(self())
