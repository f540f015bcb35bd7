"""The alcohol rule's trade-off, for each way of deciding: 13-17-year-olds served without ID against
adults 25+ asked for ID, over every cut; and one operating point per rule, chosen on val.

Rule ``threshold`` asks for ID when the estimated age is under a cut (years); rule ``heads`` when the
model's under-25 head gives P(age < 25) at least a cut. Each rule's operating point is the cut that
asks the fewest adults on the validation photos while serving at most ``policy.max_teen_pass_rate`` of
their 13-17-year-olds; the test photos then say what it costs (never used to choose). The rule with
the fewer adults asked on val is the one to use (``policy.rule``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agecheck.config import CHALLENGE_AGE
from agecheck.evaluation.challenge25 import Rate
from agecheck.outputs import write_json
from agecheck.till.policy import asks_under

TEEN_AGES = (13, 18)
#: The cuts of each rule: thresholds in years, probabilities of being under 25.
CUTS = {"threshold": np.arange(18.0, 40.01, 0.25), "heads": np.round(np.arange(0.02, 0.981, 0.01), 2)}
GROUPS = ("gender", "race", "source")


@dataclass(frozen=True)
class Scores:
    """One split's photos: true ages, estimated ages, P(age < 25) from the head (None: no head), and
    the group columns."""

    ages: np.ndarray
    estimates: np.ndarray
    p_under_25: np.ndarray | None
    groups: pd.DataFrame

    def asked(self, rule: str, cut: float) -> np.ndarray:
        """Whether the till would ask for ID, per photo, under ``rule`` at ``cut``."""
        threshold = cut if rule == "threshold" else CHALLENGE_AGE
        return asks_under(rule, self.estimates, self.p_under_25, threshold, cut)


def _rate(hits: np.ndarray) -> dict[str, Any]:
    """Share, counts and the upper end of its 95% Wilson interval (:class:`Rate`, as every other
    rate of the evaluation)."""
    rate = Rate(int(hits.sum()), int(hits.size))
    return {"rate": rate.value, "hits": rate.hits, "count": rate.count, "upper95": rate.upper95}


def _teens(ages: np.ndarray) -> np.ndarray:
    return (ages >= TEEN_AGES[0]) & (ages < TEEN_AGES[1])


def rates(scores: Scores, rule: str, cut: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(13-17 served without ID, adults 25+ asked for ID) at ``cut``."""
    asked = scores.asked(rule, cut)
    teens, adults = _teens(scores.ages), scores.ages >= CHALLENGE_AGE
    return _rate(~asked[teens]), _rate(asked[adults])


def curve(scores: dict[str, Scores], rules: tuple[str, ...]) -> pd.DataFrame:
    """``rule, cut, split, teens_served, adults_asked`` for every cut of every rule on every split."""
    rows = []
    for rule in rules:
        for cut in CUTS[rule]:
            for split, s in scores.items():
                teens, adults = rates(s, rule, float(cut))
                rows.append((rule, float(cut), split, teens["rate"], adults["rate"]))
    table = pd.DataFrame(rows, columns=["rule", "cut", "split", "teens_served", "adults_asked"])
    return table.astype({"teens_served": float, "adults_asked": float})  # None (no such photos): NaN


def operating_point(val: Scores, test: Scores, rule: str, target: float) -> dict[str, Any]:
    """The cut chosen on val (fewest adults asked with at most the target of teens served), and what it
    does on val, on test, on val and test's teens together, and to the adults of each test group."""
    best: tuple[float, float] | None = None
    for cut in CUTS[rule]:
        teens, adults = rates(val, rule, float(cut))
        allowed = teens["rate"] is not None and adults["rate"] is not None and teens["rate"] <= target
        if allowed and (best is None or adults["rate"] < best[1]):
            best = (float(cut), adults["rate"])
    if best is None:
        return {
            "rule": rule,
            "cut": None,
            "reason": f"no cut serves <= {target:.0%} of val's teens",
        }
    return point_rates(val, test, rule, best[0])


def point_rates(val: Scores, test: Scores, rule: str, cut: float) -> dict[str, Any]:
    """What ``rule`` at ``cut`` does on val, on test, on val and test's teens together, and to the
    adults of each test group."""
    point: dict[str, Any] = {"rule": rule, "cut": cut}
    for name, s in (("val", val), ("test", test)):
        teens, adults = rates(s, rule, cut)
        point[name] = {"teens_served": teens, "adults_asked": adults}
    both = np.concatenate([val.asked(rule, cut), test.asked(rule, cut)])
    ages = np.concatenate([val.ages, test.ages])
    point["teens_served_val_test"] = _rate(~both[_teens(ages)])
    asked, adults = test.asked(rule, cut), test.ages >= CHALLENGE_AGE
    point["adults_asked_by_group"] = {
        group: {
            str(name): _rate(asked[adults & (test.groups[group] == name).to_numpy()])
            for name in sorted(test.groups.loc[adults, group].dropna().unique(), key=str)
        }
        for group in GROUPS
        if group in test.groups
    }
    return point


def tradeoff(val: Scores, test: Scores, target: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The curves and the operating points of both rules (``heads`` only when the model has the head)
    for at most ``target`` of val's 13-17-year-olds served, with the rule that asks fewer adults on val."""
    rules = ("threshold", "heads") if val.p_under_25 is not None else ("threshold",)
    points = {rule: operating_point(val, test, rule, target) for rule in rules}
    chosen = [r for r in rules if points[r]["cut"] is not None]
    best = min(chosen, key=lambda r: points[r]["val"]["adults_asked"]["rate"]) if chosen else None
    summary = {"teens_served_target": target, "best_on_val": best, "rules": points}
    return curve({"val": val, "test": test}, rules), summary


def scores(table: pd.DataFrame, estimates: np.ndarray, heads: dict[int, np.ndarray]) -> Scores:
    """A split's :class:`Scores` from its table (``age`` and the group columns), the estimated ages
    and the model's under-age heads (by age)."""
    under_25 = heads.get(int(CHALLENGE_AGE))
    groups = table[[g for g in GROUPS if g in table]].astype(str)
    return Scores(table["age"].to_numpy(np.float64), np.asarray(estimates, np.float64), under_25, groups)


def write_tradeoff(curves: pd.DataFrame, summary: dict[str, Any], out_dir: Path) -> None:
    """``tradeoff.json`` (the operating points), ``tradeoff_RULE.csv`` (each rule's test curve, for
    ``dvc plots``) and ``tradeoff.png`` (both rules on val and test, the chosen points marked)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_json(out_dir / "tradeoff.json", summary)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for (rule, split), rows in curves.groupby(["rule", "split"], sort=False):
        if split == "test":
            rows[["cut", "adults_asked", "teens_served"]].to_csv(
                out_dir / f"tradeoff_{rule}.csv", index=False
            )
        style = "-" if split == "test" else ":"
        axes.plot(
            100 * rows["adults_asked"], 100 * rows["teens_served"], style, label=f"{rule} rule, {split}"
        )
    for rule, point in summary["rules"].items():
        test = point.get("test", {})
        if point["cut"] is not None and None not in (
            test["adults_asked"]["rate"],
            test["teens_served"]["rate"],
        ):
            x, y = 100 * test["adults_asked"]["rate"], 100 * test["teens_served"]["rate"]
            axes.plot(x, y, "o", color="black")
            axes.annotate(f"{rule} {point['cut']:g}", (x, y), textcoords="offset points", xytext=(5, 5))
    axes.axhline(100 * summary["teens_served_target"], color="grey", linewidth=0.8)
    axes.set_xlabel("adults 25+ asked for ID (%)")
    axes.set_ylabel("13-17-year-olds served without ID (%)")
    axes.set_xlim(0, 60)
    axes.set_ylim(0, 40)
    axes.legend()
    axes.set_title("The alcohol rule: teens served against adults asked (points: chosen on val)")
    figure.tight_layout()
    figure.savefig(out_dir / "tradeoff.png", dpi=100)
    plt.close(figure)
