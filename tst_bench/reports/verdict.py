"""The one-line answer a benchmark designer looks for: is there non-visual signal, and how much?

The TsT score's 95% CI is set against the floor a blind guesser reaches without reading the
question: the majority answer of the training folds or chance, whichever is higher. A CI entirely
above that floor means the question and option text alone give answers away (non-visual signal);
the distance in points (score x 100) says how much.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..schemas import TsTResult

Signal = Literal["signal", "none", "below"]


@dataclass(frozen=True)
class Verdict:
    signal: Signal
    floor_name: str
    floor: float
    #: TsT score minus the floor, in points (x 100)
    points: float
    text: str


def verdict(result: TsTResult) -> Verdict:
    floor_name, floor = max(
        (("majority", result.baselines.majority), ("chance", result.baselines.chance)),
        key=lambda item: item[1],
    )
    low, high = result.ci95
    points = 100 * (result.score - floor)
    signal: Signal
    if low > floor:
        signal, finding = "signal", f"non-visual signal, {round(points):+d} points"
    elif high < floor:
        signal, finding = "below", f"no non-visual signal, below {floor_name} ({round(points):+d} points)"
    else:
        signal, finding = (
            "none",
            f"no non-visual signal at 95% ({round(points):+d} points, CI reaches {floor_name})",
        )
    text = f"TsT {result.score:.2f} [{low:.2f}, {high:.2f}] vs {floor_name} {floor:.2f}: {finding}"
    return Verdict(signal, floor_name, floor, points, text)
