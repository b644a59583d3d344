"""The IBP-versus-random figure: TsT score against rows removed, and removal precision per round."""

from __future__ import annotations

from pathlib import Path

from ..jsonl import atomic_write
from .trajectory import Trajectory

_STYLES = {"ibp": ("IBP (highest s(x) first)", "tab:red"), "random": ("random pruning", "tab:blue")}


def plot_curves(ibp: Trajectory, control: Trajectory, path: Path) -> Path:
    """Write a two-panel PNG atomically; matplotlib's Agg backend keeps it display-free."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    with_precision = ibp.flag is not None
    figure, axes = plt.subplots(1, 2 if with_precision else 1, figsize=(11 if with_precision else 6, 4.2))
    score_axis = axes[0] if with_precision else axes
    for trajectory in (ibp, control):
        label, color = _STYLES[trajectory.strategy]
        removed = [entry.removed_before for entry in trajectory.rounds]
        scores = [entry.score for entry in trajectory.rounds]
        errors = [entry.score_std for entry in trajectory.rounds]
        score_axis.errorbar(removed, scores, yerr=errors, marker="o", capsize=3, label=label, color=color)
    chance = [entry.chance for entry in ibp.rounds]
    score_axis.plot(
        [entry.removed_before for entry in ibp.rounds], chance, "k--", linewidth=1, label="chance"
    )
    score_axis.set_xlabel("rows removed")
    score_axis.set_ylabel(f"TsT {ibp.rounds[0].metric} (mean ± std over folds)")
    score_axis.set_title(f"{ibp.dataset}: {ibp.initial_rows} rows")
    score_axis.legend(loc="lower left")
    score_axis.grid(alpha=0.3)
    if with_precision:
        precision_axis = axes[1]
        for trajectory in (ibp, control):
            label, color = _STYLES[trajectory.strategy]
            pruned = [entry for entry in trajectory.rounds if entry.removed]
            precision_axis.plot(
                [entry.round for entry in pruned],
                [entry.precision for entry in pruned],
                marker="o",
                label=label,
                color=color,
            )
        first = ibp.rounds[0]
        if first.flag_rows is not None:
            base_rate = first.flag_rows / first.n_rows
            precision_axis.axhline(
                base_rate, color="k", linestyle="--", linewidth=1, label="flagged share at start"
            )
        precision_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        precision_axis.set_ylim(-0.02, 1.02)
        precision_axis.set_xlabel("round")
        precision_axis.set_ylabel(f"share of removed rows flagged '{ibp.flag}'")
        precision_axis.set_title("removal precision per round")
        precision_axis.legend()
        precision_axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)
    return path
