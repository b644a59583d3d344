"""Training k folds' adapters in one pass equals training them one by one (tiny model, CPU).

The pieces are checked against their references: the step plan against each fold's seeded order,
the packed micro-batches against the rows they hold, the per-fold AdamW against torch's AdamW +
clip_grad_norm_ + the schedule, the hooked multi-fold LoRA gradients against peft's own model and
loss; then whole runs: fold-batched adapters score like one-by-one adapters and load in HF peft.
"""

import contextlib
import itertools
import logging
import random

import numpy as np
import pytest
import torch

from tst_bench.datasets import load_dataset, to_test_instance, to_training_datum
from tst_bench.errors import InputError, TsTRuntimeError
from tst_bench.models.resident import ResidentModel, torch_threads
from tst_bench.predictors.hf import HFPredictor, HFPredictorConfig
from tst_bench.trainers.peft import PeftTrainer, PeftTrainerConfig
from tst_bench.trainers.peft import attention as packed_attention
from tst_bench.trainers.peft.adapter_files import initial_adapter, lora_config, tensor_key
from tst_bench.trainers.peft.loop import (
    MAX_MICRO_BATCH_TOKENS,
    PROGRESS_MIN_STEPS,
    PROGRESS_REPORTS,
    FoldPass,
    activation_bytes_per_token,
    fitting_micro_batch_tokens,
    train_folds,
)
from tst_bench.trainers.peft.lora_hooks import FoldWeights, Routing, attach
from tst_bench.trainers.peft.optimizer import FoldAdamW, Schedule
from tst_bench.trainers.peft.packing import FILLER_SEGMENT, Example, Step, StepRow, micro_batches, plan_steps
from tst_bench.trainers.settings import TrainingSettings

from .helpers import assert_same_scores, fold_jobs

THREADS = 1  # float sums depend on the thread count: every comparison here runs with one


def examples_of(lengths, seed=0):
    rng = random.Random(seed)
    rows = []
    for length in lengths:
        response = [rng.randrange(3, 50) for _ in range(rng.choice((1, 2)))]
        rows.append(Example([rng.randrange(3, 50) for _ in range(length - len(response))], response))
    return rows


def test_steps_follow_each_folds_own_seeded_order():
    examples = [examples_of([6] * 10), examples_of([5] * 8, seed=1)]
    steps = plan_steps(examples, seeds=[3, 4], batch_size=4, epochs=2)
    assert len(steps) == 6  # ceil(10/4) = 3 steps per epoch; the 8-row fold has 2
    for fold, seed in enumerate((3, 4)):
        shuffler = random.Random(seed)
        for epoch in range(2):
            order = list(range(len(examples[fold])))
            shuffler.shuffle(order)
            trained = [r.example for s in steps[epoch * 3 : epoch * 3 + 3] for r in s.rows if r.fold == fold]
            assert trained == order
    assert [s.active for s in steps[:3]] == [[True, True], [True, True], [True, False]]
    assert all(not any(r.fold == 1 for r in s.rows) for s in steps if not s.active[1])
    for step in steps:
        for fold in (0, 1):
            labels = sum(len(examples[fold][r.example].response) for r in step.rows if r.fold == fold)
            assert step.label_counts[fold] == labels


@pytest.mark.parametrize("one_line", [False, True])
def test_micro_batches_hold_every_row_once_and_label_its_answer(one_line):
    examples = [examples_of([3, 9, 4, 7, 12, 5]), examples_of([8, 6, 10, 2], seed=1)]
    step = Step(
        rows=[StepRow(0, i) for i in range(6)] + [StepRow(1, i) for i in range(4)],
        active=[True, True],
        label_counts=[sum(len(e.response) for e in fold) for fold in examples],
    )
    batches = micro_batches(step, examples, micro_batch_tokens=24, pad_id=0, one_line=one_line)
    assert len(batches) > 1  # 66 tokens do not fit one micro-batch of 24
    seen, weights = [], [0.0, 0.0]
    for batch in batches:
        assert one_line or batch.lines * batch.width <= 24
        ids, folds = batch.input_ids.reshape(-1), batch.token_folds
        segments, positions = batch.segments.reshape(-1), batch.position_ids.reshape(-1)
        for segment in set(segments.tolist()) - {FILLER_SEGMENT}:
            where = np.flatnonzero(segments == segment)
            assert (np.diff(where) == 1).all() and (positions[where] == np.arange(len(where))).all()
            fold = int(folds[where[0]])
            assert (folds[where] == fold).all()
            seen.append((fold, tuple(ids[where].tolist())))
        for position, target, fold, weight in zip(
            batch.label_positions, batch.label_targets, batch.label_folds, batch.label_weights, strict=True
        ):
            assert ids[position + 1] == target and segments[position] == segments[position + 1]
            assert folds[position] == fold
            weights[fold] += weight
        assert list(batch.label_folds) == sorted(batch.label_folds)  # fold by fold
    expected = [(f, tuple(e.prompt + e.response)) for f, fold in enumerate(examples) for e in fold]
    assert sorted(seen) == sorted(expected)
    assert weights == pytest.approx([1.0, 1.0])  # each fold's loss is a mean over its labels


def test_fold_adamw_equals_torch_adamw_with_clipping_and_schedule_per_fold():
    generator = torch.Generator().manual_seed(0)
    folds, size, steps = 3, 40, 9
    start = torch.randn(folds, size, generator=generator)
    grads_per_step = [torch.randn(folds, size, generator=generator) * 3 for _ in range(steps)]
    active = [[True, True, step % 3 != 2] for step in range(steps)]
    schedules = [
        Schedule.for_steps(0.1, 9, 0.2),
        Schedule.for_steps(0.05, 9, 0.0),
        Schedule.for_steps(0.2, 6, 0.5),
    ]
    values, grads = start.clone(), torch.zeros(folds, size)
    ours = FoldAdamW(values, grads, schedules, weight_decay=0.01, max_grad_norm=1.0)
    for step in range(steps):
        grads.copy_(grads_per_step[step])
        ours.step(active[step])
    for fold, schedule in enumerate(schedules):
        parameter = torch.nn.Parameter(start[fold].clone())
        optimizer = torch.optim.AdamW([parameter], lr=schedule.learning_rate, weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s, schedule=schedule: schedule.rate(s) / schedule.learning_rate
        )
        for step in range(steps):
            if not active[step][fold]:
                continue
            parameter.grad = grads_per_step[step][fold].clone()
            torch.nn.utils.clip_grad_norm_([parameter], 1.0)
            optimizer.step()
            scheduler.step()
        torch.testing.assert_close(values[fold], parameter.detach(), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def records():
    return load_dataset("synthetic:shortcut?rows=300&seed=0").records


@pytest.fixture(scope="module")
def resident(tiny_source):
    return ResidentModel(tiny_source)


def encoded(trainer, records):
    return trainer.encode([to_training_datum(r) for r in records])


@pytest.mark.parametrize("servable", [False, True], ids=["full-copies-of-embeddings", "lora-on-embeddings"])
def test_each_folds_gradient_equals_peft_on_that_fold_alone(resident, records, servable):
    """One micro-batch of two folds' rows: each fold's gradient is what peft's model and loss
    give for that fold's rows alone (the hooks, label positions and loss weights are right)."""
    from peft import get_peft_model

    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny", servable), resident)
    model = resident.model
    peft_config = lora_config(trainer.config.training)
    fold_rows = [encoded(trainer, records[:5]), encoded(trainer, records[5:9])]
    seeds = (11, 12)
    starts = [initial_adapter(model, peft_config, seed) for seed in seeds]
    weights = FoldWeights(starts[0][0], 2, "cpu")
    for fold, (_, tensors) in enumerate(starts):
        weights.load(fold, tensors)
    step = Step(
        [StepRow(f, i) for f, rows in enumerate(fold_rows) for i in range(len(rows))],
        [True, True],
        [sum(len(e.response) for e in rows) for rows in fold_rows],
    )
    (batch,) = micro_batches(step, fold_rows, 4096, trainer._pad_id())
    routing = Routing(count=2)
    attached = attach(model, weights, routing)
    with torch_threads(THREADS):
        try:
            FoldPass(model, weights, routing, "packed").forward_backward(batch, torch.zeros(2))
        finally:
            attached.remove()
        for fold, seed in enumerate(seeds):
            torch.manual_seed(seed)
            reference = get_peft_model(model, peft_config)
            try:
                loss = reference(**padded_batch(fold_rows[fold], trainer._pad_id())).loss
                loss.backward()
                for name, module in reference.get_base_model().named_modules():
                    for key, parameter in trainable_tensors(module).items():
                        ours = weights.grads[fold][slice(*weights.offsets[tensor_key(name, key)])]
                        torch.testing.assert_close(ours, parameter.grad.reshape(-1), rtol=1e-4, atol=1e-6)
            finally:
                from tst_bench.models.adapters import detach_adapter

                detach_adapter(reference)


def trainable_tensors(module):
    from tst_bench.trainers.peft.adapter_files import _describe

    described = _describe("", module)
    return {} if described is None else described[1]


def padded_batch(rows, pad_id):
    width = max(e.length for e in rows)
    ids = [e.prompt + e.response + [pad_id] * (width - e.length) for e in rows]
    labels = [[-100] * len(e.prompt) + e.response + [-100] * (width - e.length) for e in rows]
    mask = [[1] * e.length + [0] * (width - e.length) for e in rows]
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "attention_mask": torch.tensor(mask),
    }


def state_of(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("servable", [False, True], ids=["full-copies-of-embeddings", "lora-on-embeddings"])
def test_fold_batched_adapters_score_like_one_by_one(resident, records, servable, tmp_path):
    """3 folds of the 300-row shortcut set, two epochs (equality needs steps, not a learnt
    shortcut): same losses, adapters, s(x) and predictions."""
    config = PeftTrainerConfig.for_recipe("tiny", servable, num_epochs=2, fold_batching=True)
    trainer = PeftTrainer(config, resident)
    predictor = HFPredictor(HFPredictorConfig(), resident)
    jobs, tests = fold_jobs(records, 3, tmp_path / "together")
    alone_jobs, _ = fold_jobs(records, 3, tmp_path / "alone")
    base = state_of(resident.model)
    with torch_threads(THREADS):
        together = trainer.train_many(jobs)
        alone = [trainer.train(job.training_data, job.output_dir, seed=job.seed) for job in alone_jobs]
        assert all(a.training_config["trained_together"] == 3 for a in together)
        for left, right, test in zip(together, alone, tests, strict=True):
            assert left.training_config["final_loss"] == pytest.approx(
                right.training_config["final_loss"], abs=1e-4
            )
            predictor.load_adapter(left)  # HF peft loads the saved adapter
            ours = predictor.predict(test)
            predictor.load_adapter(right)
            reference = predictor.predict(test)
            predictor.unload_adapter()
            assert_same_scores(ours, reference)
    assert all(torch.equal(base[name], tensor) for name, tensor in state_of(resident.model).items())


def test_fold_batching_is_a_trainer_option(resident):
    assert resident.device == "cpu"
    assert not PeftTrainer(PeftTrainerConfig(), resident).trains_folds_together  # auto: CUDA only
    assert PeftTrainer(PeftTrainerConfig(fold_batching=True), resident).trains_folds_together
    assert not PeftTrainer(
        PeftTrainerConfig(fold_batching=True, lora_dropout=0.1), resident
    ).trains_folds_together
    with pytest.raises(InputError, match="fold_batching"):
        PeftTrainer(PeftTrainerConfig(fold_batching="sometimes"), resident)


def out_of_memory_above(tokens: int, sizes: list[int]):
    """A FoldPass.forward_backward that runs out of device memory on micro-batches of more than
    `tokens` tokens, after adding a partial gradient (as a real OOM mid-backward leaves one)."""
    real = FoldPass.forward_backward

    def forward_backward(self, batch, step_loss):
        sizes.append(batch.real_tokens)
        if batch.real_tokens > tokens:
            self.weights.grads.add_(1.0)
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, batch, step_loss)

    return forward_backward


def two_folds(resident, records):
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny"), resident)
    return [encoded(trainer, records[:48]), encoded(trainer, records[48:96])], trainer._pad_id()


def train_two_folds(resident, records, micro_batch_tokens, batch_size=16, epochs=1):
    examples, pad_id = two_folds(resident, records)
    settings = TrainingSettings(learning_rate=5e-3, num_epochs=epochs, batch_size=batch_size)
    with torch_threads(THREADS):
        return train_folds(
            resident.model,
            examples,
            [1, 2],
            settings,
            pad_id,
            micro_batch_tokens=micro_batch_tokens,
            attention="packed",
        )


def test_a_step_out_of_memory_starts_over_in_smaller_micro_batches(resident, records, monkeypatch, caplog):
    """The adapters of a run with half the micro-batch size from the start (the partial gradient
    dropped), and that size for the rest of the pass."""
    examples, _ = two_folds(resident, records)
    longest = max(example.length for fold in examples for example in fold)
    reference = train_two_folds(resident, records, micro_batch_tokens=4 * longest)
    sizes: list[int] = []
    monkeypatch.setattr(FoldPass, "forward_backward", out_of_memory_above(4 * longest, sizes))
    with caplog.at_level(logging.WARNING, logger="tst_bench"):
        trained = train_two_folds(resident, records, micro_batch_tokens=8 * longest)
    assert max(sizes) > 4 * longest  # it did run out of memory
    assert torch.equal(trained.weights.values, reference.weights.values)
    assert trained.stats.real_tokens == reference.stats.real_tokens
    assert (
        caplog.text.count("out of device memory") == 1 and f"micro_batch_tokens={4 * longest}" in caplog.text
    )


def test_out_of_memory_with_one_row_per_micro_batch_is_a_clear_error(resident, records, monkeypatch):
    monkeypatch.setattr(FoldPass, "forward_backward", out_of_memory_above(0, []))
    with pytest.raises(
        TsTRuntimeError, match=r"out of device memory with micro-batches of one \d+-token row"
    ):
        train_two_folds(resident, records, micro_batch_tokens=512)


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "fold(s): step" in r.getMessage()]


def test_a_long_pass_logs_its_progress_and_throughput(resident, records, caplog):
    """A pass of one row per step over 2 epochs (96 steps) logs a line per tenth; a pass of a few
    steps logs none; the end-of-pass summary has no device figures on a CPU."""
    with caplog.at_level(logging.INFO, logger="tst_bench"):
        trained = train_two_folds(resident, records, micro_batch_tokens=4096, batch_size=1, epochs=2)
    assert trained.stats.steps == 96 >= PROGRESS_MIN_STEPS
    assert len(progress_lines(caplog)) == PROGRESS_REPORTS
    assert progress_lines(caplog)[-1].startswith("training 2 fold(s): step 90/96")
    summary = trained.stats.summary()
    assert f"{trained.stats.real_tokens:,} real tokens" in summary and "GiB" not in summary
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tst_bench"):
        train_two_folds(resident, records, micro_batch_tokens=4096)
    assert not progress_lines(caplog)


def test_varlen_rows_attend_like_packed_lines(resident, records, monkeypatch):
    """The varlen path (CUDA kernel) with a reference kernel on the CPU: same loss as packed
    lines, so its plumbing (one line, row boundaries, the registered attention) is right."""
    assert packed_attention.resolve_attention("auto", "cpu", torch.float32) == "packed"
    monkeypatch.setattr(packed_attention, "varlen_kernel", reference_varlen_kernel)
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny"), resident)
    rows = [encoded(trainer, records[:7])]
    step = Step([StepRow(0, i) for i in range(7)], [True], [sum(len(e.response) for e in rows[0])])
    losses, grads = {}, {}
    peft_config = lora_config(TrainingSettings(modules_to_save=("lm_head", "embed_tokens")))
    layout, tensors = initial_adapter(resident.model, peft_config, 0)
    with torch_threads(THREADS):
        for mode, one_line in (("packed", False), ("varlen", True)):
            weights = FoldWeights(layout, 1, "cpu")
            weights.load(0, tensors)
            routing = Routing(count=1)
            attached = attach(resident.model, weights, routing)
            context = (
                packed_attention.varlen_attention(resident.model) if one_line else contextlib.nullcontext()
            )
            try:
                with context:
                    (batch,) = micro_batches(step, rows, 4096, trainer._pad_id(), one_line=one_line)
                    losses[mode] = torch.zeros(1)
                    FoldPass(resident.model, weights, routing, mode).forward_backward(batch, losses[mode])
                    grads[mode] = weights.grads.clone()
            finally:
                attached.remove()
    assert resident.model.config._attn_implementation != packed_attention.VARLEN_ATTENTION
    torch.testing.assert_close(losses["varlen"], losses["packed"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads["varlen"], grads["packed"], rtol=1e-4, atol=1e-6)
    assert grads["packed"].abs().sum() > 0


def reference_varlen_kernel(q, k, v, cu_seqlens, longest, scale):
    import torch.nn.functional as F

    groups = q.shape[1] // k.shape[1]
    outputs = []
    bounds = cu_seqlens.tolist()
    for start, end in itertools.pairwise(bounds):
        keys = k[start:end].repeat_interleave(groups, dim=1).transpose(0, 1)
        values = v[start:end].repeat_interleave(groups, dim=1).transpose(0, 1)
        out = F.scaled_dot_product_attention(
            q[start:end].transpose(0, 1), keys, values, is_causal=True, scale=scale
        )
        outputs.append(out.transpose(0, 1))
    return torch.cat(outputs)


def test_adapters_can_be_saved_in_bf16_and_load_in_peft(resident, records, tmp_path):
    from tst_bench.models.adapters import cast_adapter_weights

    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny", num_epochs=1), resident)
    adapter = trainer.train([to_training_datum(r) for r in records[:40]], tmp_path / "a", seed=0)
    before = adapter.adapter_path.joinpath("adapter_model.safetensors").stat().st_size
    assert cast_adapter_weights(adapter.adapter_path, torch.bfloat16) > before // 3
    from safetensors import safe_open

    with safe_open(str(adapter.adapter_path / "adapter_model.safetensors"), framework="pt") as handle:
        assert {handle.get_tensor(name).dtype for name in handle.keys()} == {torch.bfloat16}  # noqa: SIM118
    predictor = HFPredictor(HFPredictorConfig(), resident)
    predictor.load_adapter(adapter)
    assert len(predictor.predict([to_test_instance(r) for r in records[40:44]])) == 4
    predictor.unload_adapter()


@pytest.mark.gpu
def test_gpu_paths_agree(tiny_source, records):
    """On CUDA in bf16: varlen attention gives packed SDPA's loss and gradients (where varlen
    runs), and two folds in one pass get the gradients each gets alone."""
    resident = ResidentModel(tiny_source, device="cuda", dtype="bfloat16")
    trainer = PeftTrainer(PeftTrainerConfig.for_recipe("tiny"), resident)
    peft_config = lora_config(trainer.config.training)
    fold_rows = [encoded(trainer, records[:6]), encoded(trainer, records[6:11])]
    starts = [initial_adapter(resident.model, peft_config, seed) for seed in (1, 2)]
    modes = ["packed"]
    if packed_attention.resolve_attention("auto", "cuda:0", torch.bfloat16) == "varlen":
        modes.append("varlen")
    results = {}
    for mode in modes:
        for folds in ((0, 1), (0,), (1,)):
            weights = FoldWeights(starts[0][0], len(folds), "cuda")
            for slot, fold in enumerate(folds):
                weights.load(slot, starts[fold][1])
            rows = [fold_rows[fold] for fold in folds]
            step = Step(
                [StepRow(slot, i) for slot, fold in enumerate(folds) for i in range(len(fold_rows[fold]))],
                [True] * len(folds),
                [sum(len(e.response) for e in fold_rows[fold]) for fold in folds],
            )
            (batch,) = micro_batches(
                step, rows, 4096, trainer._pad_id(), one_line=mode == "varlen", width_multiple=16
            )
            routing = Routing(count=len(folds))
            attached = attach(resident.model, weights, routing)
            context = (
                packed_attention.varlen_attention(resident.model)
                if mode == "varlen"
                else contextlib.nullcontext()
            )
            try:
                with context:
                    loss = torch.zeros(len(folds), device="cuda")
                    FoldPass(resident.model, weights, routing, mode).forward_backward(batch, loss)
            finally:
                attached.remove()
            for slot, fold in enumerate(folds):
                results[(mode, folds, fold)] = (loss[slot].item(), weights.grads[slot].float().cpu())
    for mode in modes:
        for fold in (0, 1):
            together, alone = results[(mode, (0, 1), fold)], results[(mode, (fold,), fold)]
            assert together[0] == pytest.approx(alone[0], rel=2e-2)
            torch.testing.assert_close(together[1], alone[1], rtol=5e-2, atol=1e-3)
    if "varlen" in modes:
        for fold in (0, 1):
            varlen, packed = results[("varlen", (0, 1), fold)], results[("packed", (0, 1), fold)]
            assert varlen[0] == pytest.approx(packed[0], rel=2e-2)
            torch.testing.assert_close(varlen[1], packed[1], rtol=5e-2, atol=1e-3)


def test_auto_micro_batches_fit_the_available_memory(tiny_source):
    """On a CPU `auto` is the largest size; the activation estimate scales with the model's shape."""
    model = ResidentModel(tiny_source).model
    assert fitting_micro_batch_tokens(model, torch.device("cpu")) == MAX_MICRO_BATCH_TOKENS
    config = model.config
    per_layer = 3 * config.intermediate_size + 8 * config.hidden_size
    assert activation_bytes_per_token(model) == config.num_hidden_layers * per_layer * 4  # float32
