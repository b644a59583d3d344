"""How a predictor pool moves instances to its Ray workers and predictions back.

`object_store` puts the batch into Ray's shared-memory object store as one JSON document
(pydantic-core's serialiser; works across nodes); `object_store_pickle` hands Ray the pydantic
objects to pickle instead; `files` writes JSON Lines to a directory every worker can read (needs a
shared filesystem across nodes). `benchmarks/test_ray_transport.py` measures all three; the pool
defaults to the fastest.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from ..jsonl import PydanticJSONLinesReader, PydanticJSONLinesWriter
from ..schemas import LLMPredictionResult, TestInstance

TransportName = Literal["object_store", "object_store_pickle", "files"]
TRANSPORTS: tuple[TransportName, ...] = ("object_store", "object_store_pickle", "files")
INSTANCES = TypeAdapter(list[TestInstance])
RESULTS = TypeAdapter(list[LLMPredictionResult])


class ObjectStoreTransport:
    """Batches as JSON bytes (default) or as pickled objects, through Ray's object store."""

    def __init__(self, pickled: bool = False):
        self.pickled = pickled

    @property
    def name(self) -> TransportName:
        return "object_store_pickle" if self.pickled else "object_store"

    def send(self, instances: Sequence[TestInstance]) -> Any:
        return list(instances) if self.pickled else INSTANCES.dump_json(list(instances))

    def receive_instances(self, payload: Any) -> list[TestInstance]:
        return payload if self.pickled else INSTANCES.validate_json(payload)

    def send_results(self, payload: Any, results: list[LLMPredictionResult]) -> Any:
        return results if self.pickled else RESULTS.dump_json(results)

    def receive_results(self, payload: Any) -> list[LLMPredictionResult]:
        return payload if self.pickled else RESULTS.validate_json(payload)

    def close(self) -> None:
        pass


class FileTransport:
    """JSON Lines files in `directory` (a temporary one unless given); removed on close."""

    name: TransportName = "files"

    def __init__(self, directory: Path | None = None):
        self._owned = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="tst-bench-pool-"))

    def send(self, instances: Sequence[TestInstance]) -> str:
        path = self.directory / f"{uuid.uuid4().hex}.in.jsonl"
        PydanticJSONLinesWriter(path).write_batch(instances)
        return str(path)

    def receive_instances(self, payload: str) -> list[TestInstance]:
        return PydanticJSONLinesReader(payload, TestInstance).read_all()

    def send_results(self, payload: str, results: list[LLMPredictionResult]) -> str:
        path = Path(payload.removesuffix(".in.jsonl") + ".out.jsonl")
        PydanticJSONLinesWriter(path).write_batch(results)
        return str(path)

    def receive_results(self, payload: str) -> list[LLMPredictionResult]:
        results = PydanticJSONLinesReader(payload, LLMPredictionResult).read_all()
        Path(payload).unlink(missing_ok=True)
        Path(payload.removesuffix(".out.jsonl") + ".in.jsonl").unlink(missing_ok=True)
        return results

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)


Transport = ObjectStoreTransport | FileTransport


def make_transport(name: TransportName) -> Transport:
    if name in ("object_store", "object_store_pickle"):
        return ObjectStoreTransport(pickled=name == "object_store_pickle")
    if name == "files":
        return FileTransport()
    raise ValueError(f"unknown transport {name!r}; choose one of {TRANSPORTS}")
