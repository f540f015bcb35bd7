"""Stage validate: check every photo and label row; write usable photos, rejections and counts."""

from __future__ import annotations

import time
from pathlib import Path

from agecheck.config import load_params
from agecheck.data.validation import validate_sources
from agecheck.errors import AgecheckError, exit_on_error
from agecheck.outputs import fresh_dir, write_json

RAW = Path("data/raw")
OUT = Path("data/validated")
METRICS = Path("metrics/validation.json")
REJECTED = Path("metrics/validation/rejected.csv")


@exit_on_error
def main() -> None:
    params = load_params()
    started = time.monotonic()
    tars = {name: RAW / f"{name}.tar" for name in params.data.sources}
    result = validate_sources(tars, params.validate_, fresh_dir(OUT))
    if result.usable.empty:
        raise AgecheckError("no usable photo remains after validation; see " + str(REJECTED))
    result.usable.to_csv(OUT / "photos.csv", index=False)
    REJECTED.parent.mkdir(parents=True, exist_ok=True)
    result.rejected.to_csv(REJECTED, index=False)
    write_json(METRICS, result.metrics)
    rejected = result.metrics["total"]["photos"]["rejected_by_reason"]
    print(
        f"validate: {len(result.usable)} usable photos, {len(result.rejected)} rejected photos/rows "
        f"({rejected}) in {time.monotonic() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
