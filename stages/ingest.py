"""Stage ingest@SOURCE: pack one raw photo folder, unchanged, into data/raw/SOURCE.tar."""

from __future__ import annotations

import argparse
from pathlib import Path

from agecheck.errors import AgecheckError, exit_on_error
from agecheck.ingest import pack_source
from agecheck.params import load_params, section


@exit_on_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", help="a key of data.sources in params.yaml")
    parser.add_argument("--out-dir", type=Path, default=Path("data/raw"))
    args = parser.parse_args()
    sources = section(load_params(), "data").get("sources") or {}
    if args.source not in sources:
        raise AgecheckError(f"data.sources in params.yaml has no source named {args.source!r}")
    count = pack_source(Path(sources[args.source]), args.out_dir / f"{args.source}.tar")
    print(f"ingest {args.source}: packed labels.csv and {count} entries of final_files/")


if __name__ == "__main__":
    main()
