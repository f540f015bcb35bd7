#!/usr/bin/env bash
# Release the trained model: put models/age_model.keras, exactly as dvc.lock records it, into the
# default DVC remote that lives in this repository (release/dvc-remote), replacing the previous
# release, so that `dvc pull models/age_model.keras` on a fresh clone gets it, and rewrite the docs'
# example outputs from it (scripts/update_docs.py). Then commit dvc.lock, release/, README.md and
# docs/ together. Nothing but the model can go there: every other cached output
# is `push: false` in dvc.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source .venv/bin/activate
if ! dvc status --quiet; then
    echo "release: the pipeline is not up to date (dvc status): run dvc repro first, so that the" \
        "model, dvc.lock and the metrics all match" >&2
    exit 2
fi
# the released model (stage combine) and its members (stages train@...): with the members in the
# remote, an experiment on a fresh clone (dvc pull, dvc exp run -S policy...) never retrains
models=$(python -c 'import yaml; lock = yaml.safe_load(open("dvc.lock"))["stages"]
print(" ".join(o["path"] + ":" + o["md5"] for n, s in lock.items() if n == "combine" or n.startswith("train@")
               for o in s["outs"] if o["path"].endswith(".keras")))')
keep=()
for entry in $models; do
    dvc push --quiet --remote release "${entry%%:*}"
    md5=${entry##*:}
    keep+=(! -path "release/dvc-remote/files/md5/${md5:0:2}/${md5:2}")
done
md5=${models##*models/age_model.keras:}
md5=${md5%% *}
# keep only these models in the remote: git history keeps the earlier releases
find release/dvc-remote -type f "${keep[@]}" -delete
find release/dvc-remote -mindepth 1 -type d -empty -delete
python scripts/update_docs.py  # the README's and docs' example outputs and results, from this model
echo "release: model $md5 and its members in release/dvc-remote ($(du -sh release/dvc-remote | cut -f1)); README.md and" \
    "docs/ may have changed (scripts/update_docs.py): commit them with the release:"
echo "  git add dvc.lock release README.md docs && git commit -m 'Release the model'"
