"""tst-bench: the Test-set Stress-Test as a pytest-plugin benchmark harness.

Public names are imported lazily, so `import tst_bench` (which pytest does for the plugin) does not
pull in torch, transformers or vLLM until they are used.
"""

from __future__ import annotations

from .lazy_exports import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "TrainingDatum": "schemas",
    "TestInstance": "schemas",
    "LLMPredictionResult": "schemas",
    "LoRAAdapterInfo": "schemas",
    "QARecord": "schemas",
    "FoldResult": "schemas",
    "TsTResult": "schemas",
    "PydanticJSONLinesWriter": "jsonl",
    "PydanticJSONLinesReader": "jsonl",
    "LLMPredictorInterface": "predictors.base",
    "LLMTrainerInterface": "trainers.base",
    "HFPredictor": "predictors.hf",
    "HFPredictorConfig": "predictors.hf",
    "PeftTrainer": "trainers.peft.trainer",
    "PeftTrainerConfig": "trainers.peft.trainer",
    "VLLMPredictor": "predictors.vllm",
    "VLLMPredictorConfig": "predictors.vllm",
    "LlamaFactoryTrainer": "trainers.llamafactory",
    "LlamaFactoryConfig": "trainers.llamafactory",
    "RayPredictorPool": "predictors.pool",
    "RayPredictorPoolConfig": "predictors.pool",
    "RayVLLMPredictor": "predictors.ray_vllm",
    "RayVLLMPredictorConfig": "predictors.ray_vllm",
    "TrainableLLMPredictor": "predictors.trainable",
    "TrainableLLMPredictorConfig": "predictors.trainable",
    "LLMEvaluator": "evaluator",
    "RunConfig": "config",
    "run_tst": "engine",
    "load_dataset": "datasets",
    "resolve_model": "models",
    "PruneConfig": "ibp.runner",
    "run_prune": "ibp.runner",
    "RFTrainer": "rf.backend",
    "RFPredictor": "rf.backend",
    "InputError": "errors",
    "TsTRuntimeError": "errors",
    "write_report": "reports.write",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)
