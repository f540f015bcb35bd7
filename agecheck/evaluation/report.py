"""A short Markdown report for store managers: the key numbers in plain words, the figures, the
results per group and the worst errors per age band (listed by photo id; photos never embedded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from agecheck.data.age_bands import BAND_LABELS, age_band
from agecheck.evaluation.results import Evaluation, NoSafeThreshold, TillCheck

#: Figures of the evaluate stage shown in the report, with their captions.
FIGURES = (
    ("challenge25_rates.png", "Minors served without ID and adults asked for ID, per threshold"),
    ("tradeoff.png", "13-17-year-olds served against adults asked: the threshold rule and the under-25 head"),
    ("mae_by_age_band.png", "Average error per age band"),
    ("predicted_vs_true.png", "Estimated against real age"),
    ("by_group.png", "Errors and Challenge 25 rates per group"),
    ("error_distribution.png", "Distribution of the errors"),
)
WORST_PER_BAND = 3
#: Published figure for comparison (Yoti, 13-17-year-olds estimated 25 or older).
YOTI_MINOR_PASS = 0.0009


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def key_numbers(evaluation: Evaluation) -> list[str]:
    """The headline paragraphs: accuracy, then the Challenge 25 rates and the safe threshold."""
    c25, safe = evaluation.challenge25, evaluation.challenge25.safe_threshold
    threshold, legal = c25.threshold, c25.legal_age
    sources = ", ".join(f"{name} {mae:.1f}" for name, mae in evaluation.mae_by_source.items())
    lines = [
        f"- **Accuracy.** On {evaluation.count:,} test photos the estimate is off by "
        f"**{evaluation.mae:.1f} years** on average (per source: {sources}); half of the estimates are "
        f"within {evaluation.median_ae:.1f} years.",
        f'- **Minors served without ID.** With the rule "ask for ID under {threshold:g}", '
        f"**{c25.minors_passed} of {c25.minors} customers under {legal:g}** "
        f"({_pct(c25.minor_pass_rate)}; at most {_pct(c25.minor_pass_rate_upper95)} with 95% "
        f"confidence) look {threshold:g} or older to the model and would be served without an ID check.",
        f"- **13-17-year-olds served without ID.** **{c25.teens_passed} of {c25.teens}** "
        f"({_pct(c25.teen_pass_rate)}; at most {_pct(c25.teen_pass_rate_upper95)} with 95% "
        f"confidence). Yoti publishes {_pct(YOTI_MINOR_PASS)} for the same age band.",
        f"- **Adults asked for ID.** {c25.adults_checked} of {c25.adults} customers aged "
        f"{threshold:g} or older ({_pct(c25.adult_check_rate)}) would be asked for ID.",
    ]
    teens = c25.teens_val_test
    if teens is not None:
        lines.append(
            f"- **13-17-year-olds, validation and test photos together.** **{teens.passed} of "
            f"{teens.count}** ({_pct(teens.rate)}; at most {_pct(teens.upper95)} with 95% "
            "confidence)."
        )
    lines += till_numbers(evaluation.till)
    if isinstance(safe, NoSafeThreshold):
        lines.append("- **Safer threshold.** Not computed: the calibration photos have no minors.")
    else:
        lines.append(
            f"- **Safer threshold.** To serve at most {_pct(safe.max_minor_pass_rate)} of minors "
            f"without ID (set on the {safe.calibrated_on} photos), ask for ID under "
            f"**{safe.threshold:g}**: "
            f"on the test photos that serves {_pct(safe.minor_pass_rate)} of minors without ID and asks "
            f"{_pct(safe.adult_check_rate)} of adults for ID."
        )
    return lines


def till_numbers(till: TillCheck | None) -> list[str]:
    """The same test photos as the till sees them: whole photos and camera-like frames."""
    if till is None:
        return []
    checks = (
        ("whole photos (hair, shoulders, background)", till.whole_photos),
        ("640x480 till frames", till.frames),
    )
    return [
        f"- **At the till, {name}.** Found a face in {_pct(t.faces_found)} of "
        f"{t.photos:,} photos; off by **{t.mae:.1f} years** on average, against {t.mae_crops:.1f} "
        "on the face crops of the same photos."
        for name, t in checks
        if t is not None
    ]


def group_tables(evaluation: Evaluation) -> list[str]:
    """One table per grouping (gender, race) with the count behind each number."""
    lines: list[str] = []
    for column, groups in evaluation.groups().items():
        rows = [
            (
                name,
                g.count,
                f"{g.mae:.2f}",
                f"{_pct(g.minor_pass_rate)} of {g.minors}",
                f"{_pct(g.adult_check_rate)} of {g.adults}",
            )
            for name, g in groups.items()
        ]
        header = (column, "photos", "MAE (years)", "minors served without ID", "adults asked")
        lines += ["", *_table(header, rows)]
    return lines


def worst_errors(predictions: pd.DataFrame, per_band: int = WORST_PER_BAND) -> list[str]:
    """The largest errors in each age band, by photo id."""
    table = predictions.assign(band=age_band(predictions["age"]), abs_error=predictions["error"].abs())
    rows = []
    for band in BAND_LABELS:
        worst = table[table["band"] == band].nlargest(per_band, "abs_error")
        rows += [(band, r.id, r.age, f"{r.predicted:.1f}", f"{r.error:+.1f}") for r in worst.itertuples()]
    return _table(("age band", "photo id", "real age", "estimate", "error"), rows)


def peer_table(evaluation: Evaluation, peer: dict[str, Any]) -> list[str]:
    """Our model beside a ready-made one on the same test photos: overall, per source, 13-17."""
    if not peer:
        return ["No peer model was run (`peer.network` is empty)."]
    test = peer["test"]
    rows = [("all", evaluation.mae, test["mae"])]
    rows += [(name, mae, test["mae_by_source"].get(name)) for name, mae in evaluation.mae_by_source.items()]
    teens = "13-17"
    rows.append((teens, evaluation.mae_by_age_band.get(teens), test["mae_by_age_band"].get(teens)))
    return [
        f"{peer['name']}, on the same test photos, cut at the crop chosen for it on the validation photos "
        f"(face scale {peer['face_scale']:g}). MAE in years; a positive gap: ours is better.",
        "",
        *_table(
            ("test photos", "our model", "the peer", "gap"),
            [
                (name, f"{ours:.2f}", f"{theirs:.2f}", f"{theirs - ours:+.2f}")
                for name, ours, theirs in rows
                if ours is not None and theirs is not None
            ],
        ),
    ]


def rule_table(tradeoff: dict[str, Any]) -> list[str]:
    """Each way of deciding at its operating point chosen on val, with what it does on test."""
    if not tradeoff:
        return ["Not computed."]
    target = tradeoff["teens_served_target"]
    rows = []
    for rule, point in tradeoff["rules"].items():
        if point["cut"] is None:
            rows.append((rule, "-", point["reason"], "", "", ""))
            continue
        val, test, both = point["val"], point["test"], point["teens_served_val_test"]
        cut = f"age < {point['cut']:g}" if rule == "threshold" else f"P(under 25) >= {point['cut']:g}"
        rows.append(
            (
                rule,
                cut,
                _pct(val["adults_asked"]["rate"]),
                _pct(test["adults_asked"]["rate"]),
                f"{_pct(both['rate'])} of {both['count']} (at most {_pct(both['upper95'])})",
                _pct(test["teens_served"]["rate"]),
            )
        )
    groups = []
    for rule, point in tradeoff["rules"].items():
        for group, rates in point.get("adults_asked_by_group", {}).items():
            shown = ", ".join(f"{name} {_pct(r['rate'])} of {r['count']}" for name, r in rates.items())
            groups.append(f"- {rule} rule, adults 25+ asked per {group} (test): {shown}")
    return [
        f"Each rule at the cut that asks the fewest adults on the validation photos while serving at most "
        f"{_pct(target)} of their 13-17-year-olds; best on val: **{tradeoff['best_on_val']}**.",
        "",
        *_table(
            (
                "rule",
                "ask for ID when",
                "adults asked, val",
                "adults asked, test",
                "13-17 served, val + test",
                "13-17 served, test",
            ),
            rows,
        ),
        "",
        *groups,
    ]


def build_report(
    evaluation: Evaluation,
    predictions: pd.DataFrame,
    figures: Sequence[tuple[str, str]],
    peer: dict[str, Any] | None = None,
    tradeoff: dict[str, Any] | None = None,
) -> str:
    """The report as Markdown; ``figures`` are (path relative to the report, caption) pairs; ``peer``
    the peer stage's results (``metrics/peer.json``), ``tradeoff`` the rules' operating points."""
    bands = evaluation.mae_by_age_band
    lines = [
        "# Age estimation at the till: what the model means for alcohol sales",
        "",
        "Generated by `dvc repro` from the test photos (never used to train or tune the model).",
        "",
        "## Key numbers",
        "",
        *key_numbers(evaluation),
        "",
        "## Error per age band",
        "",
        *_table(
            ("age band", "photos", "MAE (years)"),
            [(band, evaluation.count_by_age_band[band], f"{mae:.2f}") for band, mae in bands.items()],
        ),
        "",
        "## The alcohol rule: a threshold on the age, or the under-25 head",
        "",
        *rule_table(tradeoff or {}),
        "",
        "## Against a ready-made age model",
        "",
        *peer_table(evaluation, peer or {}),
        "",
        "## Per group of customers",
        "",
        "Groups come from the photo labels (`not recorded` where a source has no such label).",
        *group_tables(evaluation),
        "",
        "## Figures",
        "",
    ]
    for path, caption in figures:
        lines += [f"![{caption}]({path})", ""]
    lines += [
        "## Largest errors per age band",
        "",
        "Photo ids only: the photos' licence forbids showing them here.",
        "",
        *worst_errors(predictions),
        "",
    ]
    return "\n".join(lines)
