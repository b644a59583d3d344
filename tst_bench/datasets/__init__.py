"""Datasets: loading benchmark files and the synthetic generator, all as blind QA records."""

from .loaders import Dataset, load_dataset, parse_synthetic_spec
from .prompts import blind_instruction, to_test_instance, to_training_datum
from .synthetic import SyntheticSpec, generate

__all__ = [
    "Dataset",
    "SyntheticSpec",
    "blind_instruction",
    "generate",
    "load_dataset",
    "parse_synthetic_spec",
    "to_test_instance",
    "to_training_datum",
]
