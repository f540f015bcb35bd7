"""Stage ingest@SOURCE: pack one raw photo folder, unchanged, into data/raw/SOURCE.tar."""

from __future__ import annotations

import argparse
from pathlib import Path

from agecheck.config import load_params
from agecheck.data.ingest import pack_source
from agecheck.errors import AgecheckError, exit_on_error


@exit_on_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", help="a key of data.sources in params.yaml")
    parser.add_argument("--out-dir", type=Path, default=Path("data/raw"))
    args = parser.parse_args()
    sources = load_params().data.sources
    if args.source not in sources:
        raise AgecheckError(f"data.sources in params.yaml has no source named {args.source!r}")
    count = pack_source(Path(sources[args.source]), args.out_dir / f"{args.source}.tar")
    print(f"ingest {args.source}: packed labels.csv and {count} entries of final_files/")


if __name__ == "__main__":
    main()
