"""Rewrite the docs' example outputs and result tables from the model and the metrics of this checkout.

Numbers copied into the docs by hand go stale at the next retrain, so they are written here instead:
every block between ``<!-- NAME:begin ... -->`` and ``<!-- NAME:end -->`` in README.md,
docs/serving.md and docs/model_card.md comes from this script, and everything outside the markers
is left alone.

* ``quickstart-predict``, ``quickstart-service`` (README.md) and ``serving-predict``
  (docs/serving.md): the README's quickstart command run as a process, and the same photo posted to
  the service in-process (FastAPI's TestClient), both with ``models/age_model.keras``;
* ``serving-till`` (docs/serving.md) and ``card-*`` (docs/model_card.md): from ``metrics/``
  (``evaluate/details.json``, ``evaluate/predictions.csv``), which ``dvc repro``
  writes for that model.

Usage, from the repository root (``scripts/release.sh`` runs it after the push)::

    python scripts/update_docs.py            # rewrite the blocks
    python scripts/update_docs.py --check    # exit 1 and print a diff when a block would change

Model outputs are compared with one unit of tolerance in the last digit shown (a float rounding
differently on another CPU is not a stale doc) and ``milliseconds`` not at all; a block that
matches is kept as it is, so rerunning the script does not churn the files. Exit status: 0 up to
date or rewritten, 1 ``--check`` found stale blocks, 2 a one-line ``error:``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The README quickstart's photo, as a user types it in the repository root (a 26-year-old, AAF).
PHOTO = "../shared/datasets/aaf_whole/final_files/000011.jpg"
MODEL = "models/age_model.keras"
README, SERVING, CARD = Path("README.md"), Path("docs/serving.md"), Path("docs/model_card.md")
#: ``<!-- NAME:begin ... -->`` (its own line), the body, ``<!-- NAME:end -->``.
BLOCK = re.compile(
    r"(?P<begin><!-- (?P<name>[\w-]+):begin[^\n]*?-->\n)(?P<body>.*?)(?P<end><!-- (?P=name):end -->)", re.S
)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
MILLISECONDS = re.compile(r'("milliseconds":\s*)-?\d+(?:\.\d+)?')
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
SOURCE_NAMES = {"utkface": "UTKFace", "aaf": "AAF"}
WIDTH = 100  # prose is wrapped at this width


class DocsError(Exception):
    """A one-line reason the docs cannot be generated (exit status 2)."""


@dataclass(frozen=True)
class Block:
    """A generated block; ``tolerant``: model outputs (numbers may differ by one unit in the last digit)."""

    text: str
    tolerant: bool = False


# --- blocks in a file ---------------------------------------------------------------------------


def _numbers_match(old: str, new: str) -> bool:
    """Two numbers as shown: equal integers, or decimals within one unit of the last digit."""
    decimals = max(len(s.partition(".")[2]) for s in (old, new))
    if decimals == 0:
        return old == new
    return abs(float(old) - float(new)) <= 10**-decimals * 1.0001


def same(old: str, new: str, tolerant: bool) -> bool:
    """Whether a block's current text still says what the generated one says."""
    if not tolerant:
        return old == new
    old, new = MILLISECONDS.sub(r"\1#", old), MILLISECONDS.sub(r"\1#", new)
    old_parts, new_parts = NUMBER.split(old), NUMBER.split(new)
    old_numbers, new_numbers = NUMBER.findall(old), NUMBER.findall(new)
    return (
        old_parts == new_parts
        and len(old_numbers) == len(new_numbers)
        and all(_numbers_match(a, b) for a, b in zip(old_numbers, new_numbers, strict=True))
    )


def update(text: str, blocks: dict[str, Block], where: str = "") -> str:
    """``text`` with each named block's body replaced (kept when it still matches); every block
    must be there exactly once."""
    found = [m["name"] for m in BLOCK.finditer(text)]
    for name in blocks:
        if found.count(name) != 1:
            raise DocsError(
                f"{where or 'the text'} has {found.count(name)} blocks {name} (<!-- {name}:begin --> ... "
                f"<!-- {name}:end -->), not one"
            )

    def body(match: re.Match[str]) -> str:
        block = blocks.get(match["name"])
        if block is None:
            return match[0]
        new = "\n" + block.text.rstrip("\n") + "\n\n"
        return match[0] if same(match["body"], new, block.tolerant) else match["begin"] + new + match["end"]

    return BLOCK.sub(body, text)


def stale(root: Path, docs: dict[Path, dict[str, Block]]) -> dict[Path, tuple[str, str]]:
    """``{file: (now, generated)}`` for each file whose blocks would change."""
    changed = {}
    for relative, blocks in docs.items():
        path = root / relative
        if not path.is_file():
            raise DocsError(f"no {relative} in {root}")
        now = path.read_text(encoding="utf-8")
        generated = update(now, blocks, str(relative))
        if generated != now:
            changed[relative] = (now, generated)
    return changed


def diff(relative: Path, now: str, generated: str) -> str:
    return "".join(
        difflib.unified_diff(
            now.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            f"{relative} (now)",
            f"{relative} (generated)",
        )
    )


# --- from the model -----------------------------------------------------------------------------


def _indented(lines: Sequence[str]) -> str:
    return "\n".join(f"    {line}" if line else "" for line in lines) + "\n"


def predict_output(root: Path, photo: str, model: Path, params: Path) -> str:
    """What ``agecheck predict PHOTO`` prints in ``root`` (stderr and stdout, in order). ``--model``
    and ``--params`` are passed explicitly, as the defaults they stand for: a checkout that shares
    another's virtualenv would otherwise use that checkout's model. TensorFlow's log level is the
    command's default, whatever this shell sets."""
    bin_dir = Path(sys.executable).parent
    env = dict(
        os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", TF_CPP_MIN_LOG_LEVEL="2"
    )
    command = ["agecheck", "predict", photo, "--model", str(model), "--params", str(params)]
    done = subprocess.run(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if done.returncode != 0:
        last = (done.stdout.strip().splitlines() or ["no output"])[-1]
        raise DocsError(f"agecheck predict {photo} failed ({done.returncode}): {last}")
    return done.stdout


def service_answer(photo_file: Path, model: Path, params_file: Path) -> tuple[str, str]:
    """The service's answer to the photo (body as sent) and the URL ``agecheck serve`` listens on.
    Built like ``build_app`` without the tokens: an example answer does not depend on them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with warnings.catch_warnings():  # starlette's notice about httpx: not this script's business
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from agecheck.config import load_params
    from agecheck.model.age_model import AgeModel
    from agecheck.service.app import create_app
    from agecheck.till.pipeline import Till

    params = load_params(params_file)
    app = create_app(Till.from_params(AgeModel.load(model), params), params.serve)
    data = photo_file.read_bytes()
    headers = {"Content-Type": CONTENT_TYPES.get(photo_file.suffix.lower(), "image/jpeg")}
    with TestClient(app) as client:
        answers = [client.post("/predict", content=data, headers=headers) for _ in range(2)]
    for answer in answers:
        if answer.status_code != 200:
            raise DocsError(f"the service answered {answer.status_code}: {answer.text[:200]}")
    if not same(answers[0].text, answers[1].text, tolerant=True):
        raise DocsError("the service gave two different answers for the same photo")
    # the second answer: the first request's time includes one-off work
    return answers[1].text, f"http://{params.serve.host}:{params.serve.port}/predict"


def curl(photo: str, url: str, content_type: str) -> str:
    return f'curl -s --data-binary @{photo} -H "Content-Type: {content_type}" {url}'


def model_blocks(root: Path, photo: str, model: Path, params: Path) -> dict[Path, dict[str, Block]]:
    """The blocks that run the model: the quickstart's outputs and the service example."""
    photo_file = root / photo
    readme = (root / README).read_text(encoding="utf-8")
    command = f"agecheck predict {photo}"
    if not re.search(rf"^ {{4}}{re.escape(command)}$", readme, re.M):
        raise DocsError(f"README.md's quickstart does not show `{command}`: update {Path(__file__).name}")
    printed = predict_output(root, photo, model, params).rstrip("\n").splitlines()
    body, url = service_answer(photo_file, model, params)
    line = curl(photo, url, CONTENT_TYPES.get(photo_file.suffix.lower(), "image/jpeg"))
    pretty = json.dumps(json.loads(body), indent=4).splitlines()
    return {
        README: {
            "quickstart-predict": Block(_indented(printed), tolerant=True),
            "quickstart-service": Block(
                _indented([f"$ {line}", body])
                + "\n(`milliseconds`, the time the service took for the photo, varies from run to run.)\n",
                tolerant=True,
            ),
        },
        SERVING: {
            "serving-predict": Block(_indented([f"$ {line} | python -m json.tool", *pretty]), tolerant=True)
        },
    }


# --- from the metrics ---------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DocsError(f"no {path}: run dvc repro (or dvc pull) first") from None


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _share(share: float) -> str:
    """A percentage without a trailing ``.0`` (100%, 0%, 98.4%)."""
    return f"{share * 100:.1f}".removesuffix(".0") + "%"


def _found(share: float) -> str:
    return "a face found in all" if share >= 1 else f"{_pct(share)} of the faces found"


def _who(age: int, estimate: float) -> str:
    return f"a {age}-year-old at {estimate:.1f}"


def _wrap(text: str) -> str:
    """A paragraph or a ``- `` bullet wrapped as the docs are (hanging indent for bullets)."""
    indent = "  " if text.startswith("- ") else ""
    return textwrap.fill(
        text, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )


def _list(items: Sequence[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def results_table(details: dict[str, Any]) -> str:
    whole, frames = details["till"]["whole_photos"], details["till"]["frames"]
    rows = [
        f"| all | **{details['mae']:.2f}** (RMSE {details['rmse']:.2f}, median {details['median_ae']:.2f})"
        f" | {details['count']:,} |"
    ]
    for source, count in sorted(details["count_by_source"].items(), key=lambda item: -item[1]):
        rows.append(
            f"| {SOURCE_NAMES.get(source, source)} | {details['mae_by_source'][source]:.2f} | {count:,} |"
        )
    rows.append(
        f"| AAF whole photos through the till (find, align, estimate) | {whole['mae']:.2f} "
        f"({whole['mae_crops']:.2f} on the same photos' crops; {_found(whole['faces_found'])}) "
        f"| {whole['photos']:,} |"
    )
    rows.append(
        f"| every test photo in a synthetic 640 x 480 till frame | {frames['mae']:.2f} "
        f"({frames['mae_crops']:.2f} on the crops; {_found(frames['faces_found'])}) | {frames['photos']:,} |"
    )
    return "\n".join(
        [f"On {details['count']:,} test photos:", "", "| | MAE (years) | photos |", "|---|---|---|", *rows]
    )


def age_band_table(details: dict[str, Any]) -> str:
    bands = list(details["count_by_age_band"])
    signed = details["mean_error_by_age_band"]
    rows = [
        f"| {band} | {details['count_by_age_band'][band]:,} | {details['mae_by_age_band'][band]:.2f} "
        f"| {signed[band]:+.2f} |"
        for band in bands
    ]
    lines = ["| age band | photos | MAE | mean signed error |", "|---|---|---|---|", *rows]
    if signed[bands[0]] > 0 > signed[bands[-1]]:
        lines += [
            "",
            _wrap(
                "The model pulls ages towards the middle: young people come out older, old people younger."
            ),
        ]
    return "\n".join(lines)


def group_table(details: dict[str, Any]) -> str:
    rows, groups = [], []
    for kind in ("gender", "race"):
        table = details.get(f"by_{kind}", {})
        for name in sorted(table, key=lambda n: (n == "not recorded", n)):
            g = table[name]
            label = f"{kind} not recorded" if name == "not recorded" else name
            rows.append(
                f"| {label} | {g['count']:,} | {g['mae']:.2f} "
                f"| {_pct(g['minor_pass_rate'])} of {g['minors']:,} "
                f"| {_pct(g['adult_check_rate'])} of {g['adults']:,} |"
            )
            if name != "not recorded":
                groups.append((kind, name, g))
    lines = [
        "| group | photos | MAE | minors served without ID | adults asked for ID |",
        "|---|---|---|---|---|",
    ]
    lines += rows
    if groups:
        kind, name, smallest = min((x for x in groups if x[2]["minors"]), key=lambda x: x[2]["minors"])
        most = [
            max((x for x in groups if x[0] == k), key=lambda x: x[2]["adult_check_rate"])
            for k in ("gender", "race")
        ]
        asked = _list([f"`{n}` ({_pct(g['adult_check_rate'])})" for _, n, g in most if g])
        overall = details["challenge25"]["adult_check_rate"]
        lines += [
            "",
            _wrap(
                f"Small groups ({smallest['minors']} minors of the `{name}` group) give wide uncertainty. "
                f"Adults are asked for ID most often in the groups {asked}, against {_pct(overall)} of all "
                "adults: more ID checks for them."
            ),
        ]
    return "\n".join(lines)


def challenge25_list(details: dict[str, Any]) -> str:
    c, safe = details["challenge25"], details["challenge25"]["safe_threshold"]
    both = c["teens_val_test"]
    yoti = 0.0009
    far = ": this model is far from that" if c["teen_pass_rate"] > 10 * yoti else ""
    bullets = [
        f"- **Minors served without ID** (under {c['legal_age']:g} estimated {c['threshold']:g}+): "
        f"**{_pct(c['minor_pass_rate'])}** ({c['minors_passed']} of {c['minors']:,}).",
        f"- **13-17-year-olds served without ID**: **{_pct(c['teen_pass_rate'])}** ({c['teens_passed']} of "
        f"{c['teens']}; at most {_pct(c['teen_pass_rate_upper95'])} with 95% confidence); "
        f"over the validation and test photos together {_pct(both['rate'])} ({both['passed']} of "
        f"{both['count']}). Yoti publishes {yoti:.2%} for this band{far}.",
        f"- **Adults {c['threshold']:g}+ asked for ID**: {_pct(c['adult_check_rate'])} "
        f"({c['adults_checked']} of {c['adults']:,}).",
        f"- **A safer threshold**: asking for ID under **{safe['threshold']:g}** (chosen on the validation "
        f"photos to serve at most {safe['max_minor_pass_rate']:.0%} of minors) serves "
        f"{_pct(safe['minor_pass_rate'])} of the test minors (13-17: {_pct(safe['teen_pass_rate'])}, "
        f"{safe['teens_passed']} of {safe['teens']}) without ID and asks {_pct(safe['adult_check_rate'])} "
        "of adults.",
    ]
    return "\n".join(_wrap(bullet) for bullet in bullets)


def failure_list(details: dict[str, Any], predictions: list[dict[str, str]]) -> str:
    """The largest errors of the test predictions, as ages and estimates (ids: metrics/report.md)."""
    threshold, legal = details["challenge25"]["threshold"], details["challenge25"]["legal_age"]
    rows = [(int(r["age"]), float(r["predicted"])) for r in predictions]
    minors = sorted(((a, p) for a, p in rows if a < legal), key=lambda r: r[0] - r[1])
    passed = [r for r in minors if r[1] >= threshold]
    older = sorted(((a, p) for a, p in rows if a >= 50), key=lambda r: r[1] - r[0])
    young = [r for r in older if r[1] < threshold]
    lines = []
    if passed:
        lines.append(
            f"- children and teenagers estimated as adults: {len(passed)} of {len(minors):,} "
            f"under-{legal:g}s estimated {threshold:g} or older, by up to "
            f"{passed[0][1] - passed[0][0]:.0f} years (the largest: "
            f"{_list([_who(a, p) for a, p in passed[:3]])});"
        )
    if young:
        lines.append(
            f"- people of 50 or more estimated under {threshold:g}: {len(young)} of {len(older):,} "
            f"(the largest: {_list([_who(a, p) for a, p in young[:3]])});"
        )
    oldest = [(a, p) for a, p in rows if a >= 100]
    if oldest:
        short = sorted(a - p for a, p in oldest)
        lines.append(
            f"- the very old: the {len(oldest)} test photos of people of 100 or more are estimated "
            f"{short[0]:.0f}-{short[-1]:.0f} years too young (few such training photos);"
        )
    frames = details["till"]["frames"]
    per_source = frames.get("by_source", {})
    sources = _list(
        [f"{SOURCE_NAMES.get(s, s)} {_share(1 - v['faces_found'])}" for s, v in per_source.items()]
    )
    lines.append(
        f"- a face the detector does not find ({_pct(1 - frames['faces_found'])} of the synthetic till frames"
        + (f"; {sources}" if sources else "")
        + ") gets no estimate at the till; in the pipeline such photos are cut as their centre square."
    )
    return "\n".join(_wrap(line) for line in lines)


def till_table(details: dict[str, Any]) -> str:
    whole, frames = details["till"]["whole_photos"], details["till"]["frames"]

    def row(label: str, m: dict[str, Any]) -> str:
        found = _share(m["faces_found"])
        return f"| {label} | {m['photos']:,} | {found} | {m['mae']:.2f} | {m['mae_crops']:.2f} |"

    lines = [
        "| | photos | faces found | MAE through the till | MAE on the pipeline's crops of the same photos |",
        "|---|---|---|---|---|",
        row("`aaf_whole` originals of the AAF test photos", whole),
        row("synthetic till frames, all test photos", frames),
    ]
    for source, m in frames.get("by_source", {}).items():
        lines.append(row(f"  of {SOURCE_NAMES.get(source, source)} photos", m))
    return "\n".join(lines)


def metrics_blocks(root: Path) -> dict[Path, dict[str, Block]]:
    """The blocks written from ``metrics/`` (no model needed)."""
    import csv

    details = _read_json(root / "metrics" / "evaluate" / "details.json")
    predictions_file = root / "metrics" / "evaluate" / "predictions.csv"
    if not predictions_file.is_file():
        raise DocsError(f"no {predictions_file}: run dvc repro first")
    with predictions_file.open(encoding="utf-8", newline="") as file:
        predictions = list(csv.DictReader(file))
    return {
        SERVING: {"serving-till": Block(till_table(details))},
        CARD: {
            "card-results": Block(results_table(details)),
            "card-age-bands": Block(age_band_table(details)),
            "card-groups": Block(group_table(details)),
            "card-challenge25": Block(challenge25_list(details)),
            "card-failures": Block(failure_list(details, predictions)),
        },
    }


def generate(root: Path, photo: str, model: Path, params: Path) -> dict[Path, dict[str, Block]]:
    """Every generated block, by file."""
    if not model.is_file():
        raise DocsError(f"no model at {model}: run dvc pull models/age_model.keras")
    if not (root / photo).is_file():
        raise DocsError(f"no photo at {photo} (from {root}): the shared datasets are needed")
    docs: dict[Path, dict[str, Block]] = {README: {}, SERVING: {}, CARD: {}}
    for part in (model_blocks(root, photo, model, params), metrics_blocks(root)):
        for relative, blocks in part.items():
            docs[relative].update(blocks)
    return docs


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff when the docs are stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: this script's)")
    parser.add_argument("--model", type=Path, help=f"the model (default: ROOT/{MODEL})")
    parser.add_argument("--params", type=Path, help="the params (default: ROOT/params.yaml)")
    parser.add_argument("--photo", default=PHOTO, help=f"the quickstart photo, from ROOT (default: {PHOTO})")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    model = (args.model or root / MODEL).resolve()
    params = (args.params or root / "params.yaml").resolve()
    try:
        changed = stale(root, generate(root, args.photo, model, params))
    except DocsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        for relative, (now, generated) in changed.items():
            sys.stdout.write(diff(relative, now, generated))
        if changed:
            print(
                f"update_docs: {', '.join(map(str, changed))} differ from the model and metrics: "
                "run python scripts/update_docs.py and commit the result",
                file=sys.stderr,
            )
            return 1
        print("update_docs: the docs are up to date", file=sys.stderr)
        return 0
    for relative, (_, generated) in changed.items():
        (root / relative).write_text(generated, encoding="utf-8")
    print(f"update_docs: rewrote {', '.join(map(str, changed)) or 'nothing (up to date)'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
