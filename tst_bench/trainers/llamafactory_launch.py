"""How the LlamaFactory trainer starts LlamaFactory: its CLI, or this Python with a folder of its own.

LlamaFactory 0.9.5 pins transformers<=5.6, peft<=0.18.1, trl<=0.24, accelerate<=1.11 and
datasets<=4.0, older than what vLLM and tst-bench run with, so it never shares their packages:
* a `llamafactory-cli` executable of its own environment (a venv: `make setup` creates
  .venv-llamafactory), or
* a folder holding LlamaFactory and those pins, installed with `pip install --target` (what
  gpu/stage_llamafactory.sh stages for the GPU machine, whose image has torch and the rest):
  the trainer runs `python -m llamafactory.cli` with this interpreter and that folder alone on
  PYTHONPATH, ahead of the interpreter's own site-packages.

Lookup order: the `cli` or `python_path` trainer option, $TST_BENCH_LLAMAFACTORY_CLI,
$TST_BENCH_LLAMAFACTORY_PYTHONPATH, `llamafactory-cli` on PATH, the project's .venv-llamafactory.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

CLI_NAME = "llamafactory-cli"
MODULE_NAME = "llamafactory.cli"
CLI_ENV = "TST_BENCH_LLAMAFACTORY_CLI"
PYTHONPATH_ENV = "TST_BENCH_LLAMAFACTORY_PYTHONPATH"
PROJECT_VENV = ".venv-llamafactory"
INSTALL_HINT = (
    "install LlamaFactory in its own venv: `make setup` (creates .venv-llamafactory), or"
    " `python -m venv .venv-llamafactory && .venv-llamafactory/bin/pip install torch==2.13.0 &&"
    " .venv-llamafactory/bin/pip install llamafactory==0.9.5 torch==2.13.0`; or point"
    f" ${CLI_ENV} / --trainer-option cli=PATH at an existing {CLI_NAME}, or ${PYTHONPATH_ENV} /"
    " --trainer-option python_path=DIR at a folder LlamaFactory was installed into with"
    " `pip install --target` (gpu/stage_llamafactory.sh)"
)


@dataclass(frozen=True)
class LaunchCommand:
    """The command line up to LlamaFactory's subcommand, and the PYTHONPATH it runs with."""

    argv: tuple[str, ...]
    #: The only PYTHONPATH of the process (None: none at all, as a venv's CLI needs).
    python_path: str | None = None

    @property
    def name(self) -> str:
        return CLI_NAME if self.python_path is None else f"python -m {MODULE_NAME}"

    def command(self, *args: str) -> list[str]:
        return [*self.argv, *args]


def resolve_launcher(cli: str | None = None, python_path: str | None = None) -> LaunchCommand:
    """The LlamaFactory to run (see the module docstring for the order)."""
    if cli and python_path:
        raise InputError("give the llamafactory trainer either cli= or python_path=, not both")
    if cli:
        return LaunchCommand((str(resolve_cli(cli)),))
    if python_path:
        return python_path_launcher(python_path, "python_path option")
    if os.environ.get(CLI_ENV):
        return LaunchCommand((str(resolve_cli()),))
    if os.environ.get(PYTHONPATH_ENV):
        return python_path_launcher(os.environ[PYTHONPATH_ENV], f"${PYTHONPATH_ENV}")
    return LaunchCommand((str(resolve_cli()),))


def python_path_launcher(python_path: str, source: str) -> LaunchCommand:
    """This interpreter running `llamafactory.cli` from the given folder(s) (os.pathsep-separated)."""
    folders = [Path(entry).expanduser().resolve() for entry in python_path.split(os.pathsep) if entry]
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing or not folders:
        raise InputError(
            f"the LlamaFactory folder given by the {source} does not exist: {missing or python_path}"
        )
    if not any((folder / "llamafactory" / "cli.py").is_file() for folder in folders):
        raise InputError(
            f"no llamafactory package in {', '.join(map(str, folders))} (given by the {source});"
            f" {INSTALL_HINT}"
        )
    return LaunchCommand((sys.executable, "-m", MODULE_NAME), os.pathsep.join(map(str, folders)))


def resolve_cli(configured: str | None = None) -> Path:
    """The llamafactory-cli to run: configured path, $TST_BENCH_LLAMAFACTORY_CLI, PATH, project venv."""
    explicit = configured or os.environ.get(CLI_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            source = "cli option" if configured else f"${CLI_ENV}"
            raise InputError(f"{CLI_NAME} given by the {source} is not an executable file: {path}")
        return path
    found = shutil.which(CLI_NAME)
    if found:
        return Path(found)
    candidates = [
        Path.cwd() / PROJECT_VENV / "bin" / CLI_NAME,
        Path(__file__).resolve().parents[2] / PROJECT_VENV / "bin" / CLI_NAME,
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    looked = ", ".join(["PATH", *dict.fromkeys(str(c) for c in candidates)])
    raise InputError(f"{CLI_NAME} not found (looked in {looked}); {INSTALL_HINT}")
