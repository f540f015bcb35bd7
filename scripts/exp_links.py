"""Let `dvc exp run --temp`, `--queue` and `--dry` find the photo folders that `params.yaml` names by
a relative path outside the repository (`data.sources`, `evaluate.whole_photos`: `../shared/...`).

DVC runs those experiments in a copy of the repository at `.dvc/tmp/exps/standalone/<tmp>/` (`--temp`,
`--dry`) or `.dvc/tmp/exps/<tmp>/` (`--queue`), and resolves a stage's deps and runs its command from
there: `../shared/datasets/utkface` then means `.dvc/tmp/exps/standalone/shared/datasets/utkface`, which
does not exist, and the `ingest` stages fail ("No such file or directory"). DVC has no setting for it
(deps are relative to the stage's directory; `DVC_ROOT` is the copy's root). This script puts one
relative symlink in each of those two folders (`.dvc/tmp/exps/standalone/shared ->
../../../../../shared`), so that the same relative path reaches the same folder from the copy, with
nothing absolute in `params.yaml` and nothing in git (`.dvc/tmp` is DVC's ignored scratch folder).
`scripts/setup.sh` runs it; run it again after pointing `data.sources` elsewhere:

    python scripts/exp_links.py          # prints the links it made or found
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where DVC makes its copies of the repository (DVC 3: dvc/repo/experiments/queue/tempdir.py and
#: executor/local.py): --temp and --dry, then --queue.
EXEC_PARENTS = (Path(".dvc/tmp/exps/standalone"), Path(".dvc/tmp/exps"))


def planned_links(root: Path, paths: Iterable[str]) -> dict[Path, str]:
    """The symlinks (path -> relative target) that make each relative path in ``paths`` that leaves
    the repository reach the same folder from DVC's copies of ``root``. Paths inside the repository
    (they travel with the copy), absolute ones and '' need none; a path with so many ``..`` that
    it would need a link outside the repository is left out."""
    root = Path(os.path.abspath(root))
    links: dict[Path, str] = {}
    for text in paths:
        if not text or os.path.isabs(text):
            continue
        parts = Path(os.path.normpath(text)).parts
        ups = len(parts) - len(tuple(p for p in parts if p != ".."))
        if ups == 0 or ups == len(parts) or parts[:ups] != ("..",) * ups:
            continue
        first = parts[ups]
        target = Path(os.path.normpath(root.joinpath(*parts[:ups], first)))
        for parent in EXEC_PARENTS:
            copy = root / parent / "tmp"  # one of DVC's copies of the repository
            base = Path(os.path.normpath(copy.joinpath(*parts[:ups])))
            if root not in base.parents:
                continue
            links[base / first] = os.path.relpath(target, base)
    return links


def make_links(root: Path, paths: Iterable[str]) -> list[Path]:
    """Create the links of :func:`planned_links` (idempotent); return them. Raises ``FileExistsError``
    when something else already stands where a link goes."""
    made = []
    for link, target in planned_links(root, paths).items():
        if link.is_symlink() and os.readlink(link) == target:
            made.append(link)
            continue
        if link.exists() or link.is_symlink():
            raise FileExistsError(f"{link} exists and is not a link to {target}: move it away")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target, target_is_directory=True)
        made.append(link)
    return made


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from agecheck.config import load_params

    params = load_params(ROOT / "params.yaml")
    paths = [*params.data.sources.values(), params.evaluate.whole_photos]
    try:
        links = make_links(ROOT, paths)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for link in links:
        print(f"exp_links: {link.relative_to(ROOT)} -> {os.readlink(link)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
