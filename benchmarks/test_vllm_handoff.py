"""Where a fold's wall time goes when training and scoring hand the device to each other.

One benchmark (one round) per path on the tiny model:
  rebuild   LlamaFactory trains in its own process; the vLLM engine is torn down before training
            and built again for scoring (the original design);
  hot_swap  LlamaFactory trains; one vLLM engine serves the whole run and swaps each fold's adapter
            in (and sleeps during training where vLLM supports it: CUDA);
  peft_hf   in-process peft training and hf scoring on one resident model.
extra_info holds, per fold, train / load (engine or model, plus adapter) / score / other seconds,
where "other" includes the device release before training (engine teardown or sleep); their
shares of the wall time; the wall-time ratio to `rebuild`; process RSS after each fold's clean-up;
and the adapters' total size. Size: TST_BENCH_HANDOFF_FOLDS folds (default 3) of
TST_BENCH_HANDOFF_DATASET (default synthetic:shortcut?rows=300).
"""

from __future__ import annotations

import os
import time

import psutil
import pytest

from tst_bench.backends import build_trainable
from tst_bench.config import RunConfig
from tst_bench.datasets import load_dataset
from tst_bench.errors import InputError
from tst_bench.evaluator import LLMEvaluator
from tst_bench.folds import make_fold_plan
from tst_bench.models import resolve_model
from tst_bench.predictors.trainable import TrainableLLMPredictorConfig

FOLDS = int(os.environ.get("TST_BENCH_HANDOFF_FOLDS", "3"))
DATASET = os.environ.get("TST_BENCH_HANDOFF_DATASET", "synthetic:shortcut?rows=300")
PATHS = {
    "rebuild": {
        "backend": "vllm",
        "trainer": "llamafactory",
        "predictor_options": {"engine_strategy": "rebuild"},
    },
    "hot_swap": {
        "backend": "vllm",
        "trainer": "llamafactory",
        "predictor_options": {"engine_strategy": "hot_swap"},
    },
    "peft_hf": {"backend": "hf", "trainer": "peft"},
}
PARTS = ("train_s", "load_s", "score_s", "other_s")
MB = 2**20
_WALL: dict[str, float] = {}


class FoldProbe:
    """Fold observer timing the predictor's device release and recording RSS after clean-up."""

    def __init__(self, predictor):
        self.predictor = predictor
        self.release_s: list[float] = []
        self.main_mb: list[float] = []
        self.tree_mb: list[float] = []
        self.engine_pids: list[list[int]] = []
        release = predictor.release_device

        def timed_release() -> None:
            started = time.perf_counter()
            release()
            self.release_s[-1] += time.perf_counter() - started

        predictor.release_device = timed_release

    def fold_started(self, spec) -> None:
        self.release_s.append(0.0)

    def fold_finished(self, spec):
        me = psutil.Process()
        engine = getattr(self.predictor, "engine", None)
        pids = engine.process_ids if engine is not None else []
        main = me.memory_info().rss
        self.engine_pids.append(pids)
        self.main_mb.append(main / MB)
        self.tree_mb.append((main + sum(psutil.Process(p).memory_info().rss for p in pids)) / MB)


def require_engines(path: str) -> None:
    if PATHS[path]["backend"] != "vllm":
        return
    required = os.environ.get("TST_BENCH_REQUIRE_ENGINES") == "1"
    try:
        import vllm  # noqa: F401

        from tst_bench.trainers.llamafactory import resolve_cli

        resolve_cli()
    except (ImportError, InputError) as error:
        if required:
            raise
        pytest.skip(f"needs vLLM and LlamaFactory (`make setup`): {error}")


def run_path(benchmark, tmp_path, path: str, folds: int):
    """`folds` folds of DATASET on one path, timed as one benchmark round; (trainable, probe, results)."""
    require_engines(path)
    config = RunConfig(dataset=DATASET, folds=folds, seed=0, dtype="float32", zero_shot=False, **PATHS[path])
    records = load_dataset(config.dataset).records
    plan = make_fold_plan(records, config.folds, config.seed)
    trainable = build_trainable(config, resolve_model(config.model))
    trainable.config = TrainableLLMPredictorConfig(save_adapters=True)
    probe = FoldProbe(trainable.predictor)
    evaluator = LLMEvaluator(trainable, records, config.seed, observers=[probe])

    def run_folds():
        try:
            return [evaluator.evaluate_fold(spec, tmp_path / spec.key) for spec in plan]
        finally:
            evaluator.close()

    return trainable, probe, benchmark.pedantic(run_folds, rounds=1, iterations=1)


@pytest.mark.parametrize("path", list(PATHS))
def test_fold_handoff(benchmark, tmp_path, path):
    _, probe, results = run_path(benchmark, tmp_path, path, FOLDS)
    folds = []
    for result, release_s in zip(results, probe.release_s, strict=True):
        timings = result.timings
        folds.append(
            {
                "fold": result.fold,
                "train_s": timings.train_s - release_s,
                "load_s": timings.load_s,
                "score_s": timings.score_s,
                "other_s": timings.other_s + release_s,
                "release_s": release_s,
                "total_s": timings.total_s,
                "score": result.score,
                "majority_score": result.majority_score,
                "adapter_bytes": result.adapter_size_bytes,
            }
        )
    wall = sum(f["total_s"] for f in folds)
    totals = {part: sum(f[part] for f in folds) for part in PARTS}
    _WALL[path] = wall
    info = {
        "path": path,
        "dataset": DATASET,
        "folds": folds,
        "wall_s": wall,
        "totals_s": totals,
        "shares": {part: value / wall for part, value in totals.items()},
        "rss_after_cleanup_mb": {"main": probe.main_mb, "with_engine": probe.tree_mb},
        "rss_growth_mb": max(probe.tree_mb) - probe.tree_mb[0],
        "adapters_total_bytes": sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()),
    }
    if "rebuild" in _WALL and path != "rebuild":
        info["wall_vs_rebuild"] = wall / _WALL["rebuild"]
    benchmark.extra_info.update(info)
    shares = ", ".join(f"{part[:-2]} {share:.0%}" for part, share in info["shares"].items())
    print(f"\n{path}: {wall:.1f}s over {len(folds)} folds ({shares})")
    assert len(results) == FOLDS and all(f["adapter_bytes"] > 0 for f in folds)
    assert info["adapters_total_bytes"] == sum(f["adapter_bytes"] for f in folds)


def test_five_rebuilt_engines_do_not_grow_memory(benchmark, tmp_path):
    """The original design's path over 5 folds: 5 engines built and stopped in this one process,
    RSS (this process plus the engine's) after each fold's clean-up within 100 MB of the first."""
    trainable, probe, results = run_path(benchmark, tmp_path, "rebuild", 5)
    engine = trainable.predictor.engine
    growth = {
        "main": max(probe.main_mb) - probe.main_mb[0],
        "with_engine": max(probe.tree_mb) - probe.tree_mb[0],
    }
    adapters = sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
    benchmark.extra_info.update(
        {
            "engine_builds": engine.builds,
            "rss_after_cleanup_mb": {"main": probe.main_mb, "with_engine": probe.tree_mb},
            "rss_growth_mb": growth,
            "adapters_total_bytes": adapters,
        }
    )
    print(f"\n5 folds, engine rebuilt {engine.builds}x: RSS growth {growth} MB, adapters {adapters} bytes")
    assert engine.builds == 5 and not engine.running
    assert len({tuple(pids) for pids in probe.engine_pids}) == 5
    assert all(stopped(pid) for pids in probe.engine_pids for pid in pids)
    assert all(r.timings.load_s > 1.0 for r in results)  # each fold paid for an engine start
    assert all(value <= 100 for value in growth.values()), growth
    assert adapters == sum(r.adapter_size_bytes for r in results)


def stopped(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
