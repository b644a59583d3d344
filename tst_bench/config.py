"""RunConfig: everything that defines one TsT run, shared by the CLI, the plugin and workers.

Its field defaults are the run defaults: the CLI's options and the pytest plugin's read them from
here (a dataclass field's default is also the class attribute, e.g. `RunConfig.folds`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .datasets.rows import DEFAULT_GROUP_COLUMNS, RowRules
from .models import DEFAULT_MODEL
from .schemas import AnswerFormat

RESULT_FORMAT_VERSION = 1


@dataclass
class RunConfig:
    dataset: str
    model: str = DEFAULT_MODEL
    backend: str = "hf"
    trainer: str = "peft"
    folds: int = 5
    repeats: int = 1
    seed: int = 0
    limit: int | None = None
    out: Path | None = None
    zero_shot: bool = True
    save_adapters: bool = False
    trust_remote_code: bool = False
    device: str = "auto"
    dtype: str = "auto"
    executor: str = "sequential"
    workers: int = 1
    workers_per_gpu: int = 1
    ray_address: str | None = None
    ray_gpus: int | None = None
    predictor_options: dict[str, Any] = field(default_factory=dict)
    trainer_options: dict[str, Any] = field(default_factory=dict)
    group_columns: tuple[str, ...] = DEFAULT_GROUP_COLUMNS
    #: the format of rows without options that declare none: "num" or "oe" (None: an input error)
    without_options: AnswerFormat | None = None
    #: keep rows whose options repeat (a warning names them) instead of refusing them
    allow_duplicate_options: bool = False

    #: Fields that cannot change a run's numbers; a run may resume with different values.
    NON_RESULT_FIELDS = (
        "out",
        "executor",
        "workers",
        "save_adapters",
        "workers_per_gpu",
        "ray_address",
        "ray_gpus",
    )

    @property
    def row_rules(self) -> RowRules:
        """What the run declares about its dataset's rows."""
        return RowRules(self.without_options, self.allow_duplicate_options)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["out"] = str(self.out) if self.out else None
        data["group_columns"] = list(self.group_columns)
        return data

    #: Fields added after runs were first fingerprinted: at this value they are left out, so a run
    #: started before they existed still resumes.
    LATER_FIELDS = (("without_options", None), ("allow_duplicate_options", False))

    def fingerprint(self, dataset_fingerprint: str) -> str:
        """Identifies the run's results: same fingerprint, same numbers (so resuming is safe)."""
        data = {
            k: v
            for k, v in self.to_dict().items()
            if k not in self.NON_RESULT_FIELDS and not (k in self.LATER_FIELDS and v == self.LATER_FIELDS[k])
        }
        data["dataset_content"] = dataset_fingerprint
        data["format_version"] = RESULT_FORMAT_VERSION
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
