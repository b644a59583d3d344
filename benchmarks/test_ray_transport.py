"""Object store (JSON bytes or pickled objects) vs files for moving instances and predictions.

The workers' predictor answers at once (it only builds the results), so the time is what the
pool's transport costs: splitting, serialising, shipping, deserialising, joining. The pool's
default transport (DEFAULT_TRANSPORT in predictors/pool.py) is the faster one measured here.
"""

import logging
import statistics
import sys
import time

import pytest
import ray.cloudpickle
from ray_bench_support import cpu_description, load_average, local_cluster

from tst_bench.datasets import load_dataset, to_test_instance
from tst_bench.predictors.base import LLMPredictorInterface, result_from_choice_logprobs
from tst_bench.predictors.pool import DEFAULT_TRANSPORT, RayPredictorPool, RayPredictorPoolConfig
from tst_bench.predictors.transport import TRANSPORTS, TransportName

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

INSTANCES = 20_000
ROUNDS = 5
WORKERS = 2


class InstantPredictor(LLMPredictorInterface):
    """Full-size results (option log-probabilities, s(x)) without a model behind them."""

    def predict(self, instances):
        return [
            result_from_choice_logprobs(i, {c: -1.0 - n for n, c in enumerate(i.choices or [])})
            for i in instances
        ]

    def load_adapter(self, adapter) -> None:
        pass

    def unload_adapter(self) -> None:
        pass

    def reset(self) -> None:
        pass


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this file


def round_trip_seconds(transport: TransportName, instances) -> list[float]:
    pool = RayPredictorPool(
        InstantPredictor, RayPredictorPoolConfig(num_workers=WORKERS, transport=transport)
    )
    try:
        assert len(pool.predict(instances[:10])) == 10  # workers started
        seconds = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            results = pool.predict(instances)
            seconds.append(time.perf_counter() - started)
            assert [r.instance_id for r in results] == [i.instance_id for i in instances]
        return seconds
    finally:
        pool.close()


def test_object_store_vs_files(benchmark):
    records = load_dataset(f"synthetic:shortcut?rows={INSTANCES}&seed=1").records
    instances = [to_test_instance(r) for r in records]
    measured = {}

    def both():
        with local_cluster(num_gpus=WORKERS):
            for transport in TRANSPORTS:
                measured[transport] = round_trip_seconds(transport, instances)

    benchmark.pedantic(both, rounds=1, iterations=1)
    medians = {name: statistics.median(values) for name, values in measured.items()}
    faster = min(medians, key=medians.__getitem__)
    benchmark.extra_info.update(
        {
            "instances": INSTANCES,
            "workers": WORKERS,
            "round_trip_seconds": {name: [round(s, 4) for s in values] for name, values in measured.items()},
            "median_seconds": {name: round(s, 4) for name, s in medians.items()},
            "relative_to_fastest": {name: round(s / medians[faster], 3) for name, s in medians.items()},
            "faster": faster,
            "pool_default": DEFAULT_TRANSPORT,
            "pool_default_is_faster": faster == DEFAULT_TRANSPORT,
            "hardware": f"{cpu_description()}, one node, load average {load_average()}",
        }
    )
    logger.warning(
        "transport round trip of %d instances, median of %d: %s; faster: %s",
        INSTANCES,
        ROUNDS,
        medians,
        faster,
    )
