"""The peft trainer: LoRA on the resident base model, every fold of a run in one pass.

trainer.py        PeftTrainer and its config: encodes rows, trains, saves adapters
loop.py           the training pass: micro-batches forward and backward, one step per batch
lora_hooks.py     k folds' LoRA terms on one base model (forward hooks over stacked weights)
adapter_files.py  the adapters as peft lays them out, initialises and saves them
optimizer.py      per-fold AdamW, gradient clipping and schedule in a few kernels
packing.py        which rows every step trains on, packed into lines and micro-batches
attention.py      attention that keeps packed rows apart (masked SDPA or CUDA varlen)
"""

from .trainer import PeftTrainer, PeftTrainerConfig

__all__ = ["PeftTrainer", "PeftTrainerConfig"]
