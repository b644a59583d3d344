"""The training loop behind the peft trainer: k folds' adapters, one pass over the base model.

Per optimizer step every fold contributes its own `batch_size` rows (its own seeded order); the
loss is computed only where the labels are (the answer tokens): the decoder runs on the packed
rows, the hidden states at the labelled positions go through the output layer, cross-entropy in
fp32 on those few rows, each fold's mean over its own labels. The folds' losses are summed, so one
backward pass gives every adapter exactly its own gradient. Nothing is read back to the host
during training except, at DEBUG level, the loss once per epoch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import InputError, TsTRuntimeError
from ...models.resident import free_memory
from ..settings import TrainingSettings
from .adapter_files import AdapterLayout, initial_adapter, lora_config
from .attention import CU_SEQLENS, MAX_SEQLEN, block_causal_mask, resolve_attention, varlen_attention
from .lora_hooks import FoldWeights, Routing, attach, frozen
from .optimizer import FoldAdamW, Schedule
from .packing import Example, MicroBatch, Step, micro_batches, plan_steps, steps_per_epoch

logger = logging.getLogger(__name__)

#: Line widths on CUDA are multiples of this: SDPA's masked kernels copy unaligned masks.
MASK_ALIGNMENT = 16
#: Progress is logged this many times per pass, for passes of at least PROGRESS_MIN_STEPS steps.
PROGRESS_REPORTS, PROGRESS_MIN_STEPS = 10, 50
#: Where torch reads allocator settings from the environment (the first is the older, CUDA-only name).
ALLOCATOR_ENVIRONMENT = ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")
#: `micro_batch_tokens="auto"`: at most this many tokens per forward pass (larger passes gave no
#: more throughput on an H200: the 7B shape reached 46% MFU at this size), at least the minimum, and
#: on CUDA what the device's available memory holds (`fitting_micro_batch_tokens`).
MAX_MICRO_BATCH_TOKENS, MIN_MICRO_BATCH_TOKENS = 16384, 1024
#: Share of the device memory available when a pass starts that its activations may plan on; the
#: rest covers the optimizer's states, the output layer's rows and the allocator's slack.
ACTIVATION_SHARE = 0.8
#: Model config attributes that post-process logits, which a labelled-positions loss would skip.
LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


@dataclass
class TrainingStats:
    """What one pass did: for throughput figures (tokens are real tokens, no filler)."""

    folds: int = 0
    steps: int = 0
    micro_batches: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0
    seconds: float = 0.0
    attention: str = ""
    #: CUDA only: the caching allocator's peaks over the pass, and how often it had to free its
    #: cache and retry an allocation (each retry synchronises the device: a sign of a full cache).
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    allocation_retries: int | None = None
    #: Tokens per forward pass the pass started with, and how often it ran out of device memory
    #: and started a step over with half as many.
    micro_batch_tokens: int = 0
    out_of_memory_restarts: int = 0

    def summary(self) -> str:
        rate = self.real_tokens / max(self.seconds, 1e-9)
        text = (
            f"{self.folds} fold(s), {self.steps} steps, {self.real_tokens:,} real tokens in"
            f" {self.seconds:.1f}s ({rate:,.0f}/s), {self.attention} attention,"
            f" micro-batches of {self.micro_batch_tokens:,} tokens"
            f" ({self.out_of_memory_restarts} restarts out of memory)"
        )
        if self.peak_reserved_gib is not None:
            text += (
                f"; device memory peak {self.peak_allocated_gib:.1f} GiB allocated,"
                f" {self.peak_reserved_gib:.1f} GiB reserved, {self.allocation_retries} allocation retries"
            )
        return text


@dataclass
class TrainedFolds:
    """The trained values of every fold (row j of `weights.values` is fold j's adapter) and the
    peft config they were trained under (what `adapter_files.save_adapter` writes them with)."""

    peft_config: Any
    layout: AdapterLayout
    weights: FoldWeights
    final_losses: list[float]
    stats: TrainingStats = field(default_factory=TrainingStats)


def train_folds(
    model,
    examples: Sequence[Sequence[Example]],
    seeds: Sequence[int],
    settings: TrainingSettings,
    pad_id: int,
    *,
    micro_batch_tokens: int | str,
    attention: str,
) -> TrainedFolds:
    """Train one adapter per entry of `examples` (fold j on examples[j] with seeds[j]) together,
    each with `settings`, in forward passes of at most `micro_batch_tokens` tokens ("auto": what
    the device's free memory holds, `fitting_micro_batch_tokens`)."""
    _check_head(model)
    parameter = next(model.parameters())
    device, dtype, folds = parameter.device, parameter.dtype, len(examples)
    peft_config = lora_config(settings)
    layout, weights = _initial_weights(model, peft_config, seeds, device)
    schedules = [
        Schedule.for_steps(
            settings.learning_rate,
            steps_per_epoch(len(rows), settings.batch_size) * settings.num_epochs,
            settings.warmup_ratio,
        )
        for rows in examples
    ]
    optimizer = FoldAdamW(
        weights.values, weights.grads, schedules, settings.weight_decay, settings.max_grad_norm
    )
    attention = resolve_attention(attention, str(device), dtype)
    routing = Routing(count=folds)
    fold_pass = FoldPass(model, weights, routing, attention)
    steps = plan_steps(examples, seeds, settings.batch_size, settings.num_epochs)
    if micro_batch_tokens == "auto":
        micro_batch_tokens = fitting_micro_batch_tokens(model, device)
    loop = _Loop(examples, steps, settings.num_epochs, int(micro_batch_tokens), pad_id)
    loop.stats.attention = attention
    with _training_context(model, weights, routing, attention), _device_memory(device, loop.stats):
        loop.run(fold_pass, optimizer, weights)
    return TrainedFolds(peft_config, layout, weights, loop.final_losses(), loop.stats)


class _Loop:
    """Every optimizer step: its micro-batches forward and backward, then one AdamW step."""

    def __init__(self, examples, steps: list[Step], epochs: int, micro_batch_tokens: int, pad_id: int):
        self.examples = examples
        self.steps = steps
        self.epochs = epochs
        self.pad_id = pad_id
        #: Tokens per forward pass; halved for the rest of the pass when the device runs out of memory.
        self.micro_batch_tokens = micro_batch_tokens
        self.per_epoch = len(steps) // epochs
        self.last_losses: list = [None] * len(examples)
        self.stats = TrainingStats(
            folds=len(examples), steps=len(steps), micro_batch_tokens=micro_batch_tokens
        )
        self.started = time.perf_counter()

    def run(self, fold_pass: FoldPass, optimizer: FoldAdamW, weights: FoldWeights) -> None:
        report_every = max(1, len(self.steps) // PROGRESS_REPORTS)
        reporting = len(self.steps) >= PROGRESS_MIN_STEPS
        for number, step in enumerate(self.steps):
            step_loss = self._accumulate(fold_pass, step, weights)
            optimizer.step(step.active)
            weights.grads.zero_()
            for fold, stepping in enumerate(step.active):
                if stepping:
                    self.last_losses[fold] = step_loss
            if (number + 1) % self.per_epoch == 0 and logger.isEnabledFor(logging.DEBUG):
                epoch = (number + 1) // self.per_epoch
                logger.debug("epoch %d/%d loss %s", epoch, self.epochs, step_loss.tolist())
            if reporting and (number + 1) % report_every == 0:
                self._report_progress(number + 1)

    def _report_progress(self, done: int) -> None:
        """A log line per tenth of the pass (host time only: nothing is read back from the device)."""
        elapsed = time.perf_counter() - self.started
        left = elapsed / done * (len(self.steps) - done)
        logger.info(
            "training %d fold(s): step %d/%d, %.0fs elapsed, ~%.0fs left",
            len(self.examples),
            done,
            len(self.steps),
            elapsed,
            left,
        )

    def _accumulate(self, fold_pass: FoldPass, step: Step, weights: FoldWeights):
        """The step's gradients and per-fold loss, micro-batch by micro-batch. Out of device memory,
        the step starts over in micro-batches of half the tokens (the same gradients: micro-batches
        only add up), for the rest of the pass, down to one row per micro-batch."""
        one_line = self.stats.attention == "varlen"
        width_multiple = MASK_ALIGNMENT if fold_pass.device.type == "cuda" else 1
        while True:
            step_loss = fold_pass.new_loss()
            batches = micro_batches(
                step, self.examples, self.micro_batch_tokens, self.pad_id, one_line, width_multiple
            )
            if _fits(fold_pass, batches, step_loss):
                self.stats.micro_batches += len(batches)
                self.stats.real_tokens += sum(batch.real_tokens for batch in batches)
                self.stats.padded_tokens += sum(batch.lines * batch.width for batch in batches)
                return step_loss
            weights.grads.zero_()
            weights.current = {}
            free_memory()
            self._halve_micro_batches(max(self.examples[row.fold][row.example].length for row in step.rows))

    def _halve_micro_batches(self, longest_row: int) -> None:
        if self.micro_batch_tokens <= longest_row:
            raise TsTRuntimeError(
                f"out of device memory with micro-batches of one {longest_row}-token row: use a"
                " smaller model or shorter rows (max_seq_length), or free the device"
            )
        self.micro_batch_tokens //= 2
        self.stats.out_of_memory_restarts += 1
        logger.warning(
            "out of device memory in a training step: the step starts over with micro_batch_tokens=%d"
            " (same gradients, more passes)",
            self.micro_batch_tokens,
        )

    def final_losses(self) -> list[float]:
        """Each fold's loss at its last step (the one read back to the host), and the loop's time."""
        losses = [
            float("nan") if loss is None else float(loss[fold]) for fold, loss in enumerate(self.last_losses)
        ]
        self.stats.seconds = time.perf_counter() - self.started
        return losses


def _fits(fold_pass: FoldPass, batches: Sequence[MicroBatch], step_loss) -> bool:
    """Forward and backward of every micro-batch; False when the device ran out of memory (the
    error, and the activations its traceback holds, are gone once this returns)."""
    import torch

    try:
        for batch in batches:
            fold_pass.forward_backward(batch, step_loss)
    except torch.OutOfMemoryError:
        return False
    return True


def _initial_weights(model, peft_config, seeds: Sequence[int], device) -> tuple[AdapterLayout, FoldWeights]:
    starts = [initial_adapter(model, peft_config, seed) for seed in seeds]
    layout = starts[0][0]
    weights = FoldWeights(layout, len(seeds), device)
    for fold, (fold_layout, tensors) in enumerate(starts):
        if fold_layout != layout:
            raise RuntimeError("peft gave folds different adapter layouts under one LoRA config")
        weights.load(fold, tensors)
    return layout, weights


def _check_head(model) -> None:
    for name in LOGIT_POSTPROCESSING:
        if getattr(model.config, name, None) not in (None, 1, 1.0):
            raise InputError(
                f"the model's config sets {name}; the peft trainer computes logits from the output layer"
                " only and does not support models that post-process them"
            )


class FoldPass:
    """Forward and backward of one micro-batch, losses kept on the device."""

    def __init__(self, model, weights: FoldWeights, routing: Routing, attention: str):
        parameter = next(model.parameters())
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        self.weights = weights
        self.routing = routing
        self.device = parameter.device
        self.dtype = parameter.dtype
        self.attention = attention

    def new_loss(self):
        import torch

        return torch.zeros(self.weights.folds, dtype=torch.float32, device=self.device)

    def forward_backward(self, batch: MicroBatch, step_loss) -> None:
        import torch.nn.functional as F

        upload = self._upload
        self.weights.materialize(self.dtype)
        input_ids, position_ids = upload(batch.input_ids), upload(batch.position_ids)
        self.routing.set(upload(batch.token_folds), self.dtype)
        if self.attention == "varlen":
            hidden = self.decoder(
                input_ids=input_ids, position_ids=position_ids, use_cache=False, **self._boundaries(batch)
            ).last_hidden_state
        else:
            mask = block_causal_mask(upload(batch.segments))
            hidden = self.decoder(
                input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False
            ).last_hidden_state
        picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, upload(batch.label_positions))
        label_folds = upload(batch.label_folds)
        self.routing.set(label_folds, self.dtype, batch.label_counts)
        logits = self.head(picked).float()
        losses = F.cross_entropy(logits, upload(batch.label_targets), reduction="none")
        losses = losses * upload(batch.label_weights)
        losses.sum().backward()
        self.weights.current = {}
        step_loss.index_add_(0, label_folds, losses.detach())

    def _boundaries(self, batch: MicroBatch) -> dict:
        import numpy as np

        cumulative = np.concatenate([[0], np.cumsum(batch.row_lengths)]).astype(np.int32)
        return {CU_SEQLENS: self._upload(cumulative), MAX_SEQLEN: max(batch.row_lengths)}

    def _upload(self, array):
        import torch

        tensor = torch.from_numpy(array)
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor


def fitting_micro_batch_tokens(model, device) -> int:
    """Tokens per forward pass that the memory available now holds (MAX_MICRO_BATCH_TOKENS on a
    CPU), a multiple of MASK_ALIGNMENT; running out anyway halves it (`_Loop`)."""
    if device.type != "cuda":
        return MAX_MICRO_BATCH_TOKENS
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    available = free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    fitting = int(available * ACTIVATION_SHARE) // activation_bytes_per_token(model)
    tokens = max(MIN_MICRO_BATCH_TOKENS, min(MAX_MICRO_BATCH_TOKENS, fitting))
    tokens -= tokens % MASK_ALIGNMENT
    logger.info(
        "micro-batches of %d tokens: %.1f GiB of device memory available, ~%.2f MiB of activations a token",
        tokens,
        available / 2**30,
        activation_bytes_per_token(model) / 2**20,
    )
    return tokens


def activation_bytes_per_token(model) -> int:
    """What one token's activations kept for the backward pass take: per decoder layer about three
    MLP widths (gate, up and their product) and eight hidden widths (norms, attention in and out,
    residuals), in the model's dtype. Measured against the peaks of fold-batched passes on an H200:
    0.5B shape 42.5 KB a layer-token (estimate 43.5), 7B shape 124 KB (estimate 171: errs high)."""
    config = model.config
    element = next(model.parameters()).element_size()
    per_layer = 3 * config.intermediate_size + 8 * config.hidden_size
    return config.num_hidden_layers * per_layer * element


@contextlib.contextmanager
def _device_memory(device, stats: TrainingStats) -> Iterator[None]:
    """On CUDA, a pass allocates in expandable segments and records the allocator's peaks. Why:
    micro-batches of changing shapes fragment the caching allocator's fixed-size segments. Beside a
    sleeping vLLM engine on an H200, a 7B pass of 3 folds reached the device's limit (NVML 143.5 of
    143.8 GB) at 60% of the benchmark's rate; in expandable segments it reserved 68.4 GiB for 68.0
    allocated, with no allocation retries, at the benchmark's rate. The setting is process-wide and
    restored after the pass (a vLLM engine process has its own allocator); an `expandable_segments`
    in the environment (ALLOCATOR_ENVIRONMENT) is left as the user set it."""
    if device.type != "cuda":
        yield
        return
    import torch

    toggle = not any("expandable_segments" in os.environ.get(name, "") for name in ALLOCATOR_ENVIRONMENT)
    retries = torch.cuda.memory_stats(device).get("num_alloc_retries", 0)
    torch.cuda.reset_peak_memory_stats(device)
    if toggle:
        _expandable_segments(True)
    try:
        yield
    finally:
        if toggle:
            _expandable_segments(False)
        memory = torch.cuda.memory_stats(device)
        stats.peak_allocated_gib = memory.get("allocated_bytes.all.peak", 0) / 2**30
        stats.peak_reserved_gib = memory.get("reserved_bytes.all.peak", 0) / 2**30
        stats.allocation_retries = memory.get("num_alloc_retries", 0) - retries


def _expandable_segments(enabled: bool) -> None:
    import torch

    # Newer torch names the setter per accelerator and deprecates the CUDA-only one.
    setter = getattr(torch._C, "_accelerator_setAllocatorSettings", None)
    (setter or torch.cuda.memory._set_allocator_settings)(f"expandable_segments:{enabled}")


@contextlib.contextmanager
def _training_context(model, weights: FoldWeights, routing: Routing, attention: str) -> Iterator[None]:
    """Base frozen, adapters hooked in, attention switched, train mode; all undone after."""
    attached = attach(model, weights, routing)
    attention_context = varlen_attention(model) if attention == "varlen" else contextlib.nullcontext()
    try:
        with frozen(model), attention_context:
            model.train()
            yield
    finally:
        model.eval()
        attached.remove()
