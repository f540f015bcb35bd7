"""Stage validate: check every photo and label row; write usable photos, rejections and counts."""

from __future__ import annotations

import time
from pathlib import Path

from agecheck.errors import AgecheckError, exit_on_error
from agecheck.io import fresh_dir, write_json
from agecheck.params import load_params, section
from agecheck.validation import ValidateConfig, validate_sources

RAW = Path("data/raw")
OUT = Path("data/validated")
METRICS = Path("metrics/validation.json")
REJECTED = Path("metrics/validation/rejected.csv")


@exit_on_error
def main() -> None:
    params = load_params()
    sources = section(params, "data").get("sources") or {}
    if not sources:
        raise AgecheckError("data.sources in params.yaml lists no photo folder")
    config = ValidateConfig.from_params(section(params, "validate"))
    started = time.monotonic()
    result = validate_sources({name: RAW / f"{name}.tar" for name in sources}, config, fresh_dir(OUT))
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
