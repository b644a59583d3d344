"""The engine markers come from what a test's code uses, also through its fixtures and helpers.

The sample tests are compiled from text, so that this module's own tests name no engine.
"""

import textwrap
from types import SimpleNamespace
from typing import cast

import pytest

from .engines import engines_used

SAMPLES = textwrap.dedent(
    """
    from tst_bench.engine import run_tst


    def start_a_ray_hf_run(config):
        return run_tst(config.model_copy(update={"backend": "ray_hf"}))


    def scores_with_vllm():
        from tst_bench.predictors.vllm import VLLMPredictor

        return VLLMPredictor


    def runs_on_ray(config):
        return run_tst(config.model_copy(update={"executor": "ray", "trainer": "llamafactory"}))


    def only_names_them():
        return {"backend": "vllm", "executor": "ray"}


    def calls_a_helper(config):
        return start_a_ray_hf_run(config)


    def uses_fixtures(ray_cluster, sequential_run):
        pass
    """
)


def markers_of(name: str, fixtures: tuple[str, ...] = ()) -> list[str]:
    """The markers of the sample test `name` (what they read of a collected test: its function and
    the fixtures it requests), as if it were defined in a test module."""
    scope = {"__name__": "tests.samples"}
    exec(compile(SAMPLES, "samples.py", "exec"), scope)
    item = SimpleNamespace(obj=scope[name], fixturenames=list(fixtures))
    return engines_used(cast(pytest.Item, item))  # reads only obj and fixturenames


def test_a_class_or_a_fixture_that_starts_an_engine_marks_the_test():
    assert markers_of("scores_with_vllm") == ["vllm"]
    assert markers_of("uses_fixtures", ("ray_cluster", "sequential_run")) == ["ray", "training"]


def test_an_engine_named_in_a_config_counts_only_where_a_run_starts():
    assert markers_of("runs_on_ray") == ["ray", "llamafactory", "training"]
    assert markers_of("only_names_them") == []


def test_helpers_the_test_calls_count():
    assert markers_of("calls_a_helper") == ["ray", "training"]
