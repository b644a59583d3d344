"""`tst-bench synth`: write a synthetic benchmark (tst_bench/datasets/synthetic.py) as JSONL."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..datasets.synthetic import SYNTHETIC_KINDS, SyntheticSpec

logger = logging.getLogger(__name__)


def add_synth_command(commands) -> None:
    synth = commands.add_parser("synth", help="write the synthetic benchmark as JSONL")
    synth.add_argument(
        "--kind",
        choices=SYNTHETIC_KINDS,
        default=SyntheticSpec.kind,
        help="shortcut: a planted text cue; control: none; numeric: number answers",
    )
    synth.add_argument("--rows", type=int, default=SyntheticSpec.rows, metavar="N", help="rows to write")
    synth.add_argument("--seed", type=int, default=SyntheticSpec.seed, help="seed of the generator")
    synth.add_argument(
        "--strength", type=float, default=SyntheticSpec.strength, help="P(answer = cue's answer | cue)"
    )
    synth.add_argument(
        "--fraction",
        type=float,
        default=SyntheticSpec.shortcut_fraction,
        help="share of questions with a cue",
    )
    synth.add_argument("--options", type=int, default=SyntheticSpec.n_options, help="options per question")
    synth.add_argument("--out", type=Path, required=True, help="output .jsonl file")
    synth.set_defaults(handler=synth_command)


def synth_command(args: argparse.Namespace) -> int:
    from ..datasets.export import write_records
    from ..datasets.synthetic import generate

    spec = SyntheticSpec(
        kind=args.kind,
        rows=args.rows,
        seed=args.seed,
        strength=args.strength,
        shortcut_fraction=args.fraction,
        n_options=args.options,
    )
    records = generate(spec)
    write_records(args.out, records)
    ceiling = spec.expected_ceiling()
    logger.info(
        "wrote %d %s rows to %s%s",
        len(records),
        spec.kind,
        args.out,
        f" (expected shortcut ceiling {ceiling:.3f})" if ceiling is not None else "",
    )
    return 0
