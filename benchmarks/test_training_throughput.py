"""Training throughput of the peft trainer on one GPU: tokens/s, TFLOP/s and MFU.

For random-init Qwen2-0.5B and Qwen2.5-7B shapes (built in memory on the GPU) on Video-MME-like
rows, each case times one epoch after a warm-up:
  reference   the loop the trainer replaced: a peft model, HF's loss over every position (full-
              vocabulary logits), right-padded batches, torch AdamW, the loss read back every step;
              timed over REFERENCE_STEPS steps and extrapolated to the epoch;
  trainer     tst_bench/trainers/peft/loop.py on one fold;
  together-k  the same with k folds' adapters in one pass (each fold trains on (k-1)/k of the rows).
and, for 0.5B with 5 folds, one pass for all folds against five one-by-one passes (the speedup).
FLOPs are 4 x parameters x real (unpadded) tokens: forward plus the input-gradient backward through
frozen weights. MFU is against 989 TFLOP/s (H100/H200 dense bf16) and against a bf16 8192^3 matmul
timed in the same run. Everything lands in pytest-benchmark's extra_info, in the log and in a table
printed at the end of the module, with the training minutes a 3-fold, 12-epoch TsT of 1,350 such
rows would take at each case's rate.

Rows: $TST_BENCH_VIDEOMME (a blind Video-MME JSONL such as videomme_blind_dev.jsonl) when that file
exists, else synthetic token rows with its length distribution (log-normal, median 130 tokens).
Sizes: $TST_BENCH_THROUGHPUT_ROWS (900) rows for 0.5B, $TST_BENCH_THROUGHPUT_ROWS_7B (300) for 7B.
$TST_BENCH_PROFILE=1 adds a torch.profiler pass per trainer case and prints its top kernels and the
share of GPU time in matmuls, attention and everything else (what is left when MFU falls short).
Needs a CUDA GPU (the `gpu` marker skips it elsewhere); ~3 minutes on one H200.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tst_bench.models import ModelSource
from tst_bench.models.tiny import tiny_model_dir
from tst_bench.trainers.peft.adapter_files import lora_config
from tst_bench.trainers.peft.loop import train_folds
from tst_bench.trainers.peft.packing import Example
from tst_bench.trainers.recipes import recipe_settings
from tst_bench.trainers.settings import TrainingSettings

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)
pytestmark = pytest.mark.gpu

PEAK_TFLOPS = 989.0  # H100 / H200 SXM dense bf16
MATMUL_SIZE = 8192
REFERENCE_STEPS = int(os.environ.get("TST_BENCH_REFERENCE_STEPS", "12"))
WARMUP_ROWS = 96
ROWS = {
    "random-qwen2-0.5b": int(os.environ.get("TST_BENCH_THROUGHPUT_ROWS", "900")),
    "random-qwen2.5-7b": int(os.environ.get("TST_BENCH_THROUGHPUT_ROWS_7B", "300")),
}
CASES = [
    ("random-qwen2-0.5b", "reference", 1),
    ("random-qwen2-0.5b", "trainer", 1),
    ("random-qwen2-0.5b", "together", 5),
    ("random-qwen2.5-7b", "reference", 1),
    ("random-qwen2.5-7b", "trainer", 1),
    ("random-qwen2.5-7b", "together", 3),
]
PROFILE = os.environ.get("TST_BENCH_PROFILE") == "1"
#: Peak GiB torch allocated in each case, the model's weights included (H200, 2026-12; the 7B reference
#: loop's full-vocabulary logits are what a 80 GB card cannot hold). A case runs only where the device
#: can hold that much beyond what is allocated now, with FIT_MARGIN to spare; otherwise it skips.
MEASURED_PEAK_GIB = {
    ("random-qwen2-0.5b", "reference", 1): 27.2,
    ("random-qwen2-0.5b", "trainer", 1): 4.5,
    ("random-qwen2-0.5b", "together", 5): 17.3,
    ("random-qwen2.5-7b", "reference", 1): 90.8,
    ("random-qwen2.5-7b", "trainer", 1): 30.7,
    ("random-qwen2.5-7b", "together", 3): 54.7,
}
FIT_MARGIN = 1.05
#: The TsT the 7B figures are extrapolated to: 3 folds of videomme_blind_dev.jsonl's 1,350 rows
#: (900 training rows each), 12 epochs (the paper authors' recipe).
E2E_FOLDS, E2E_TRAIN_ROWS, E2E_EPOCHS = 3, 900, 12
SYNTHETIC_MEDIAN, SYNTHETIC_SIGMA, SYNTHETIC_BOUNDS = 130, 0.45, (40, 768)


@dataclass
class Summary:
    """The module's figures, printed as one table when the module ends."""

    rows: list[dict] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    matmul_tflops: float | None = None

    def add(self, row: dict) -> None:
        self.rows.append(row)
        logger.info("training throughput: %s", row)

    def table(self) -> str:
        header = (
            f"{'case':<34} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>6} {'vs mm':>6} {'peak GiB':>8}"
            f" {'3x12 TsT min':>12}"
        )
        lines = [f"bf16 {MATMUL_SIZE}^3 matmul: {self.matmul_tflops:.0f} TFLOP/s", header]
        for row in self.rows:
            lines.append(
                f"{row['case']:<34} {row['tokens_per_s']:>10,.0f} {row['tflops']:>8.1f}"
                f" {row['mfu_peak']:>6.1%} {row['mfu_matmul']:>6.1%} {row.get('peak_gib', 0):>8.1f}"
                f" {row.get('e2e_train_minutes', float('nan')):>12.1f}"
            )
            if "speedup" in row:
                lines.append(f"{'':<34} speedup {row['speedup']:.2f}x over one by one")
        return "\n\n".join(["\n".join(lines), *self.profiles])


@pytest.fixture(scope="module")
def summary(request):
    collected = Summary()
    yield collected
    if collected.rows:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        text = collected.table()
        logger.info("training throughput summary\n%s", text)
        if reporter is not None:
            reporter.write_line("\n" + text)


@pytest.fixture(scope="module")
def matmul_tflops(summary) -> float:
    summary.matmul_tflops = timed_matmul_tflops()
    return summary.matmul_tflops


def timed_matmul_tflops(size: int = MATMUL_SIZE, repeats: int = 20) -> float:
    import torch

    a = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        _ = a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        _ = a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


_MODELS: dict[str, torch.nn.Module] = {}


def gpu_model(shape: str) -> torch.nn.Module:
    """One in-memory model per shape for the module (building it beats writing 15 GB to disk)."""
    from tst_bench.models.random_init import random_model

    if shape not in _MODELS:
        _MODELS[shape] = random_model(shape, device="cuda").eval()
    return _MODELS[shape]


@pytest.fixture(scope="module")
def tokenizer():
    from tst_bench.models.resident import load_tokenizer

    return load_tokenizer(ModelSource("random-init", tiny_model_dir(), "pretrained"))


def rows_source() -> str:
    path = os.environ.get("TST_BENCH_VIDEOMME")
    return path if path and Path(path).is_file() else "synthetic"


def training_rows(tokenizer, count: int) -> list[Example]:
    """`count` rows of the Video-MME file (repeated if shorter) or synthetic rows like them."""
    source = rows_source()
    if source == "synthetic":
        return synthetic_rows(tokenizer, count)
    from tst_bench.datasets import load_dataset, to_training_datum
    from tst_bench.predictors.prompting import PromptStyle, encode_prompt, encode_response

    records = load_dataset(source).records
    rows = []
    for index in range(count):
        datum = to_training_datum(records[index % len(records)])
        response = encode_response(tokenizer, datum.response)
        rows.append(Example(encode_prompt(tokenizer, datum.instruction, PromptStyle(), 1024), response))
    return rows


def synthetic_rows(tokenizer, count: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    letters = [tokenizer(letter, add_special_tokens=False)["input_ids"][0] for letter in "ABCD"]
    rows = []
    for _ in range(count):
        length = int(min(max(rng.lognormvariate(0.0, SYNTHETIC_SIGMA) * SYNTHETIC_MEDIAN, 40), 768))
        prompt = [rng.randrange(3, len(tokenizer)) for _ in range(length - 2)]
        rows.append(Example(prompt, [rng.choice(letters), tokenizer.eos_token_id]))
    return rows


def recipe() -> TrainingSettings:
    """The `pretrained` recipe's training settings, one epoch."""
    return replace(recipe_settings("pretrained"), num_epochs=1)


def pass_options() -> dict:
    """How the trainer runs a pass (PeftTrainerConfig defaults; attention from the environment)."""
    from tst_bench.trainers.peft import PeftTrainerConfig

    attention = os.environ.get("TST_BENCH_ATTENTION", PeftTrainerConfig.attention)
    return {"micro_batch_tokens": PeftTrainerConfig.micro_batch_tokens, "attention": attention}


def peft_settings():
    return lora_config(recipe())


def fold_rows(rows: list[Example], folds: int) -> list[list[Example]]:
    """Fold j's training rows: every row not dealt to fold j (as a k-fold plan would)."""
    if folds == 1:
        return [rows]
    return [[row for index, row in enumerate(rows) if index % folds != fold] for fold in range(folds)]


def run_trainer(model, per_fold: list[list[Example]], pad_id: int):
    """One epoch of the trainer's loop for these folds, after a short warm-up on the same shapes."""
    import torch

    seeds = list(range(len(per_fold)))
    warm = [rows[:WARMUP_ROWS] for rows in per_fold]
    train_folds(model, warm, seeds, recipe(), pad_id, **pass_options())
    torch.cuda.synchronize()
    trained = train_folds(model, per_fold, seeds, recipe(), pad_id, **pass_options())
    stats = trained.stats
    return {
        "tokens": stats.real_tokens,
        "seconds": stats.seconds,
        "steps": stats.steps,
        "micro_batches": stats.micro_batches,
        "padding_share": 1 - stats.real_tokens / max(1, stats.padded_tokens),
        "attention": stats.attention,
        "peak_gib": stats.peak_allocated_gib,
        "micro_batch_tokens": stats.micro_batch_tokens,
        "out_of_memory_restarts": stats.out_of_memory_restarts,
    }


def run_reference(model, rows: list[Example], pad_id: int, steps: int = REFERENCE_STEPS, warmup: int = 3):
    """The replaced loop, timed over `steps` steps after `warmup`; seconds extrapolated to the epoch."""
    import torch
    from peft import get_peft_model

    from tst_bench.models.adapters import detach_adapter

    batch_size = recipe().batch_size
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    batches = [[rows[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]
    torch.manual_seed(0)
    peft_model = get_peft_model(model, peft_settings())
    try:
        params = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=recipe().learning_rate)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        peft_model.train()
        torch.cuda.reset_peak_memory_stats()
        timed_tokens, started = 0, 0.0
        for number, batch in enumerate(batches[: warmup + steps]):
            if number == warmup:
                torch.cuda.synchronize()
                started = time.perf_counter()
            loss = peft_model(**padded(batch, pad_id, model.device), use_cache=False).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, recipe().max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            float(loss.detach())
            if number >= warmup:
                timed_tokens += sum(row.length for row in batch)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    finally:
        peft_model.eval()
        detach_adapter(peft_model)
    tokens = sum(row.length for row in rows)
    return {
        "tokens": tokens,
        "seconds": seconds * tokens / timed_tokens,
        "measured_steps": steps,
        "steps": len(batches),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def padded(batch: list[Example], pad_id: int, device) -> dict:
    import torch

    width = max(row.length for row in batch)
    ids = [row.prompt + row.response + [pad_id] * (width - row.length) for row in batch]
    labels = [[-100] * len(row.prompt) + row.response + [-100] * (width - row.length) for row in batch]
    mask = [[1] * row.length + [0] * (width - row.length) for row in batch]
    return {
        name: torch.tensor(value, device=device)
        for name, value in (("input_ids", ids), ("labels", labels), ("attention_mask", mask))
    }


def throughput(result: dict, params: int, matmul: float) -> dict:
    tokens_per_s = result["tokens"] / result["seconds"]
    tflops = 4 * params * tokens_per_s / 1e12
    return {
        **result,
        "tokens_per_s": tokens_per_s,
        "tflops": tflops,
        "mfu_peak": tflops / PEAK_TFLOPS,
        "mfu_matmul": tflops / matmul,
        "params": params,
    }


@pytest.mark.parametrize(("shape", "loop", "folds"), CASES, ids=[f"{s}-{lp}-{k}" for s, lp, k in CASES])
def test_training_throughput(benchmark, summary, matmul_tflops, tokenizer, shape, loop, folds):
    model = gpu_model(shape)
    skip_unless_it_fits(MEASURED_PEAK_GIB[(shape, loop, folds)], f"{shape} {loop} x{folds}")
    params = sum(p.numel() for p in model.parameters())
    rows = training_rows(tokenizer, ROWS[shape])
    pad_id = tokenizer.pad_token_id
    if loop == "reference":
        result = benchmark.pedantic(run_reference, args=(model, rows, pad_id), rounds=1, iterations=1)
    else:
        per_fold = fold_rows(rows, folds)
        result = benchmark.pedantic(run_trainer, args=(model, per_fold, pad_id), rounds=1, iterations=1)
    figures = throughput(result, params, matmul_tflops)
    figures.update(case=f"{shape} {loop} x{folds}", shape=shape, loop=loop, folds=folds, rows=rows_source())
    mean_tokens = sum(row.length for row in rows) / len(rows)
    e2e_tokens = E2E_FOLDS * E2E_TRAIN_ROWS * E2E_EPOCHS * mean_tokens
    figures["e2e_train_minutes"] = e2e_tokens / figures["tokens_per_s"] / 60
    figures["matmul_tflops"] = matmul_tflops
    benchmark.extra_info["tst_training_throughput"] = figures
    summary.add(figures)
    if PROFILE and loop != "reference":
        summary.profiles.append(
            f"profile of {figures['case']}:\n" + profile_text(model, fold_rows(rows, folds), pad_id)
        )
    assert figures["tokens_per_s"] > 0


def skip_unless_it_fits(peak_gib: float, case: str) -> None:
    """Skip, saying why, where the device cannot hold the case's measured peak: free memory plus
    what torch holds cached, against the peak beyond what is allocated now (the model's weights)."""
    import torch

    free, total = torch.cuda.mem_get_info()
    allocated = torch.cuda.memory_allocated()
    available = free + torch.cuda.memory_reserved() - allocated
    needed = (peak_gib * 2**30 - allocated) * FIT_MARGIN
    if needed > available:
        pytest.skip(
            f"{case} peaked at {peak_gib:g} GiB allocated (measured on an H200); it needs"
            f" ~{needed / 2**30:.1f} GiB more, and {torch.cuda.get_device_name()}"
            f" ({total / 2**30:.0f} GiB) has {available / 2**30:.1f} GiB available"
        )


def test_fold_batched_speedup(benchmark, summary, matmul_tflops, tokenizer):
    """0.5B, 5 folds: one pass for all folds against five passes, one fold each (same rows)."""
    shape, folds = "random-qwen2-0.5b", 5
    model = gpu_model(shape)
    params = sum(p.numel() for p in model.parameters())
    per_fold = fold_rows(training_rows(tokenizer, ROWS[shape]), folds)
    pad_id = tokenizer.pad_token_id
    alone = [run_trainer(model, [rows], pad_id) for rows in per_fold]
    together = benchmark.pedantic(run_trainer, args=(model, per_fold, pad_id), rounds=1, iterations=1)
    one_by_one_s = sum(result["seconds"] for result in alone)
    figures = throughput(together, params, matmul_tflops)
    figures.update(
        case=f"{shape} {folds} folds: one pass",
        one_by_one_s=one_by_one_s,
        together_s=together["seconds"],
        speedup=one_by_one_s / together["seconds"],
        one_by_one_tokens_per_s=sum(result["tokens"] for result in alone) / one_by_one_s,
        rows=rows_source(),
    )
    benchmark.extra_info["tst_fold_batching"] = figures
    summary.add(figures)
    assert figures["speedup"] > 0


MATMUL_KERNELS = ("gemm", "cutlass", "cublas", "nvjet", "sm90_xmma", "matmul", "wgmma")
ATTENTION_KERNELS = ("flash", "fmha", "attention", "attn")


def profile_text(model, per_fold: list[list[Example]], pad_id: int, rows: int = 160, top: int = 20) -> str:
    """Top GPU kernels of a short trainer pass and the share of GPU time outside matmuls."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    short = [fold[:rows] for fold in per_fold]
    train_folds(model, short, list(range(len(short))), recipe(), pad_id, **pass_options())  # warm
    torch.cuda.synchronize()
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        train_folds(model, short, list(range(len(short))), recipe(), pad_id, **pass_options())
        torch.cuda.synchronize()
    wall_us = (time.perf_counter() - started) * 1e6
    text = kernel_summary(profiler.key_averages(), wall_us, top)
    logger.info("profile\n%s", text)
    return text


def kernel_summary(averages, wall_us: float, top: int) -> str:
    """Kernels by GPU time, with matmul / attention / other shares and the GPU's idle share."""
    from torch.profiler import DeviceType

    kernels = []
    for event in averages:
        if getattr(event, "device_type", None) != DeviceType.CUDA:
            continue
        spent = getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
        kernels.append((spent, event.count, event.key))
    kernels.sort(reverse=True)
    busy = sum(spent for spent, _, _ in kernels) or 1.0

    def share(names) -> float:
        return sum(s for s, _, key in kernels if any(n in key.lower() for n in names)) / busy

    matmul, attention = share(MATMUL_KERNELS), share(ATTENTION_KERNELS)
    lines = [
        f"GPU busy {busy / 1e3:.1f} ms of {wall_us / 1e3:.1f} ms wall ({busy / wall_us:.0%});"
        f" of busy time: matmul {matmul:.0%}, attention {attention:.0%}, other {1 - matmul - attention:.0%}",
        f"{'GPU ms':>9} {'share':>6} {'calls':>7}  kernel",
    ]
    for spent, count, key in kernels[:top]:
        lines.append(f"{spent / 1e3:>9.2f} {spent / busy:>6.1%} {count:>7}  {key[:110]}")
    return "\n".join(lines)
