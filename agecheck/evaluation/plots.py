"""Figures of an evaluation: predicted vs true age, MAE per age band, distribution of the errors,
Challenge 25 rates per threshold, and errors and rates per group of customers."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from agecheck.evaluation.results import Challenge25, Evaluation, Group, NoSafeThreshold

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: Ages marked on the predicted-vs-true figure: legal age for alcohol and the Challenge 25 threshold.
REFERENCE_AGES = (18, 25)


def save(fig: plt.Figure, path: Path) -> None:
    """Write ``fig`` as PNG and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _by_source(predictions: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The rows of each source, sources sorted by name."""
    return [(str(name), rows) for name, rows in predictions.groupby("source", sort=True)]


def predicted_vs_true(predictions: pd.DataFrame, mae: float, path: Path) -> None:
    """Scatter of predicted against true age, one colour per source, with the diagonal."""
    fig, ax = plt.subplots(figsize=(6, 6))
    for name, rows in _by_source(predictions):
        ax.scatter(rows["age"], rows["predicted"], s=8, alpha=0.5, label=f"{name} (n={len(rows)})")
    ages = predictions[["age", "predicted"]].to_numpy(dtype=float)
    low, high = min(0.0, ages.min()), max(100.0, ages.max())
    ax.plot([low, high], [low, high], color="black", linewidth=1, label="perfect")
    for age in REFERENCE_AGES:
        ax.axvline(age, color="grey", linestyle=":", linewidth=1)
        ax.axhline(age, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"{age}", (age, high), xytext=(2, -12), textcoords="offset points", color="grey")
    ax.set(xlim=(low, high), ylim=(low, high), xlabel="true age (years)", ylabel="predicted age (years)")
    ax.set_aspect("equal")
    ax.legend(loc="upper left")
    ax.set_title(f"Predicted vs true age (MAE {mae:.2f})")
    save(fig, path)


def mae_by_age_band(evaluation: Evaluation, path: Path) -> None:
    """Bars of the MAE and of the mean signed error (bias) in each age band, with photo counts."""
    bands = list(evaluation.mae_by_age_band)
    maes = [evaluation.mae_by_age_band[band] for band in bands]
    bias = [evaluation.mean_error_by_age_band[band] for band in bands]
    x = np.arange(len(bands))
    fig, ax = plt.subplots(figsize=(8, 4))
    bars = ax.bar(x - 0.2, maes, width=0.4, color="tab:blue", label="MAE")
    ax.bar(x + 0.2, bias, width=0.4, color="tab:orange", label="mean error (+ = too old)")
    ax.bar_label(bars, labels=[f"n={evaluation.count_by_age_band[band]}" for band in bands], padding=2)
    ax.axhline(evaluation.mae, color="black", linestyle="--", linewidth=1, label="overall MAE")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xticks(x, bands)
    ax.set(xlabel="true age band (years)", ylabel="years")
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    ax.set_title(f"MAE per age band (overall MAE {evaluation.mae:.2f})")
    save(fig, path)


def error_distribution(predictions: pd.DataFrame, mae: float, path: Path) -> None:
    """Histogram of predicted minus true age, one per source on shared bins."""
    signed = (predictions["predicted"] - predictions["age"]).to_numpy(dtype=float)
    edges = np.histogram_bin_edges(signed, bins=min(50, max(10, len(signed) // 20)))
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, rows in _by_source(predictions):
        ax.hist(rows["predicted"] - rows["age"], bins=edges, alpha=0.5, label=f"{name} (n={len(rows)})")
    ax.axvline(0, color="black", linewidth=1)
    ax.set(xlabel="predicted - true age (years)", ylabel="photos")
    ax.legend()
    ax.set_title(f"Prediction errors (MAE {mae:.2f}, mean {signed.mean():+.2f})")
    save(fig, path)


def challenge25_rates(curve: pd.DataFrame, c25: Challenge25, path: Path) -> None:
    """Both Challenge 25 rates (in %) against the threshold, with the policy and safe thresholds."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    percent = curve.set_index("threshold") * 100
    ax.plot(
        percent.index,
        percent["minor_pass_rate"],
        color="tab:red",
        marker=".",
        label=f"under-{c25.legal_age:g}s served without ID (n={c25.minors})",
    )
    ax.plot(
        percent.index,
        percent["adult_check_rate"],
        color="tab:blue",
        marker=".",
        label=f"customers {c25.threshold:g}+ asked for ID (n={c25.adults})",
    )
    ax.axvline(c25.threshold, color="black", linestyle="--", linewidth=1, label="policy threshold")
    safe = c25.safe_threshold
    if not isinstance(safe, NoSafeThreshold):
        ax.axvline(
            safe.threshold,
            color="tab:green",
            linestyle=":",
            linewidth=1.5,
            label=f"threshold for <= {safe.max_minor_pass_rate:.0%} minors served ({safe.threshold:g})",
        )
    ax.set(
        xlabel="ask for ID when the estimate is under (years)", ylabel="share of the group (%)", ylim=(0, 100)
    )
    ax.legend(fontsize=8)
    ax.set_title("Challenge 25: minors served without ID vs adults asked for ID")
    save(fig, path)


def by_group(groupings: dict[str, dict[str, Group]], path: Path) -> None:
    """For each grouping (gender, race): bars of MAE and of both rates per group, with counts."""
    fig, axes = plt.subplots(len(groupings), 2, figsize=(11, 3.6 * len(groupings)), squeeze=False)
    for row, (column, groups) in zip(axes, groupings.items(), strict=True):
        names = [f"{name}\n(n={group.count})" for name, group in groups.items()]
        row[0].bar(names, [group.mae for group in groups.values()], color="tab:blue")
        row[0].set(ylabel="MAE (years)", title=f"MAE by {column}")
        rates = pd.DataFrame(
            [(group.minor_pass_rate, group.adult_check_rate) for group in groups.values()], index=names
        )
        (rates.astype(float) * 100).plot.bar(ax=row[1], rot=0, color=["tab:red", "tab:blue"])
        row[1].legend(["minors served without ID", "adults asked for ID"], fontsize=8)
        row[1].set(ylabel="share of the group (%)", title=f"Challenge 25 rates by {column}")
    save(fig, path)


def write_evaluation_plots(
    predictions: pd.DataFrame, evaluation: Evaluation, curve: pd.DataFrame, out_dir: Path
) -> None:
    """Write ``predicted_vs_true.png``, ``mae_by_age_band.png``, ``error_distribution.png``,
    ``challenge25_rates.png`` (from the rate ``curve``) and, when the labels have groups,
    ``by_group.png``.
    """
    predicted_vs_true(predictions, evaluation.mae, out_dir / "predicted_vs_true.png")
    mae_by_age_band(evaluation, out_dir / "mae_by_age_band.png")
    error_distribution(predictions, evaluation.mae, out_dir / "error_distribution.png")
    challenge25_rates(curve, evaluation.challenge25, out_dir / "challenge25_rates.png")
    groupings = evaluation.groups()
    if groupings:
        by_group(groupings, out_dir / "by_group.png")
