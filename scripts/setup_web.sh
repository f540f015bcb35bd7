#!/usr/bin/env bash
# Offline web pages: the store network has no internet, so nothing a page needs may come from a CDN.
#  1. web/vendor/dvc_plots.html: the template .dvc/config names (plots.html_template) for
#     `dvc plots show`, with vega, vega-lite and vega-embed inlined from pinned npm tarballs whose
#     sha512 is checked against the registry's integrity pinned here.
#  2. Chromium (Debian's) and Playwright in .venv: the tests that open pages in a headless browser.
# Idempotent, and quick when all is in place. web/vendor/ is git-ignored: nothing minified is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- pins: npm view NAME@VERSION dist.integrity -------------------------------------------------
# The newest of the lines DVC's own page loads (vega 5, vega-lite 5, vega-embed 6; DVC's plot
# templates are Vega-Lite v5 specs).
NPM_PACKAGES=(
    "vega 5.33.1 sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw=="
    "vega-lite 5.23.0 sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA=="
    "vega-embed 6.29.0 sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q=="
)
PLAYWRIGHT_VERSION=1.65.2
VENDOR=web/vendor
TEMPLATE_IN=web/dvc_plots_template.html.in
TEMPLATE_OUT="$VENDOR/dvc_plots.html"
PYTHON=.venv/bin/python
[ -x "$PYTHON" ] || PYTHON=python3

sri() {  # the npm-style integrity of a file: sha512-<base64>
    "$PYTHON" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

# --- 1. the vendored tarballs, then the template ------------------------------------------------
mkdir -p "$VENDOR"
stamp_text="$(printf '%s\n' "${NPM_PACKAGES[@]}"; sha256sum "$TEMPLATE_IN" scripts/setup_web.sh)"
if [ ! -f "$TEMPLATE_OUT" ] || [ "$(cat "$VENDOR/.stamp" 2>/dev/null)" != "$stamp_text" ]; then
    for entry in "${NPM_PACKAGES[@]}"; do
        read -r name version integrity <<<"$entry"
        tarball="$VENDOR/$name-$version.tgz"
        if [ ! -f "$tarball" ] || [ "$(sri "$tarball")" != "$integrity" ]; then
            if ! command -v npm >/dev/null 2>&1; then
                echo "setup_web: npm is missing; install it with: apt-get install -y npm" >&2
                exit 1
            fi
            echo "setup_web: fetching $name@$version (npm pack)"
            rm -f "$tarball"
            npm pack --silent --pack-destination "$VENDOR" "$name@$version" >/dev/null
        fi
        actual="$(sri "$tarball")"
        if [ "$actual" != "$integrity" ]; then
            echo "setup_web: $tarball has integrity $actual, not the pinned $integrity" >&2
            rm -f "$tarball"
            exit 1
        fi
    done
    echo "setup_web: building $TEMPLATE_OUT"
    "$PYTHON" - "$TEMPLATE_IN" "$TEMPLATE_OUT" "$VENDOR" "${NPM_PACKAGES[@]}" <<'EOF'
"""Inline each package's build/NAME.min.js in place of its @@NAME@@ marker."""
import re
import sys
import tarfile
from pathlib import Path

source, target, vendor, *entries = sys.argv[1:]
page = Path(source).read_text(encoding="utf-8")
markers = set(re.findall(r"@@([a-z-]+)@@", re.sub(r"<!--.*?-->", "", page, flags=re.S)))
if markers != {entry.split()[0] for entry in entries}:
    sys.exit(f"setup_web: the template's markers {sorted(markers)} are not the pinned packages")
for entry in entries:
    name, version, _ = entry.split()
    with tarfile.open(Path(vendor) / f"{name}-{version}.tgz") as tar:
        js = tar.extractfile(f"package/build/{name}.min.js").read().decode("utf-8")
    # the source map is not shipped here; "</script" would end the inline <script> early
    js = re.sub(r"\n//# sourceMappingURL=\S+\s*$", "\n", js).replace("</script", "<\\/script")
    # DVC fills these by plain text replacement, anywhere in the page
    clash = [p for p in ("{plot_divs}", "{scripts}", "{refresh_tag}") if p in js]
    marker = f"@@{name}@@"
    if clash or page.count(marker) != 1:
        sys.exit(f"setup_web: cannot inline {name}: placeholders {clash}, {page.count(marker)} markers")
    page = page.replace(marker, f"/* {name}@{version} (npm), inlined by scripts/setup_web.sh */\n{js}")
Path(target).write_text(page, encoding="utf-8")
EOF
    printf '%s' "$stamp_text" >"$VENDOR/.stamp"
fi

# --- 2. the headless browser for the page tests ----------------------------------------------------
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup_web: chromium is missing; install it with: sudo apt-get install -y chromium" >&2
        exit 1
    fi
    echo "setup_web: installing chromium (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ -x .venv/bin/python ]; then
    installed="$(.venv/bin/python -c 'from importlib.metadata import version
print(version("playwright"))' 2>/dev/null || true)"
    if [ "$installed" != "$PLAYWRIGHT_VERSION" ]; then
        # only the Python driver: `playwright install` downloads browsers, and the tests use Debian's chromium
        echo "setup_web: installing playwright==$PLAYWRIGHT_VERSION into .venv"
        .venv/bin/python -m pip install --quiet "playwright==$PLAYWRIGHT_VERSION" 2>&1 |
            sed "/^WARNING: Location .* is ignored/d"
    fi
fi
