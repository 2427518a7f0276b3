#!/usr/bin/env bash
# Build on this host, from uv.lock, every wheel a service image installs, so that the image
# build needs no network: build/image/wheels/ plus build/image/wheels.txt.
#
#   docker/wheels.sh BASE_IMAGE
#
# The lock is exported for the base image's Python (a marker such as
# `python_full_version < '3.11.3'` depends on its patch level); downloads are checked
# against the lock's hashes (pip --require-hashes) and a package that PyPI has only as a
# source archive is built into a wheel here. wheels.txt names each wheel file with its own
# sha256, and the image installs exactly those, offline, with --require-hashes.
set -euo pipefail
cd "$(dirname "$0")/.."

base_image="${1:?usage: docker/wheels.sh BASE_IMAGE}"
uv="${UV:-.tools/bin/uv}"
pip="${PIP:-.tools/bin/pip}"
# Only PyPI, which the lock names: no local index or link from pip's configuration files.
export PIP_CONFIG_FILE=/dev/null
python="${PYTHON_FOR_TOOLS:-.venv/bin/python}"
out=build/image
rm -rf "$out"
mkdir -p "$out/wheels" "$out/local-wheels"

target_python=$(docker run --rm "$base_image" python3 -c 'import platform; print(platform.python_version())')

export_for_image() { # extra output
  "$uv" export --locked --no-emit-project --no-header --extra "$1" --format requirements-txt \
    --output-file "$out/locked-$1.txt" --quiet
  "$python" docker/select_requirements.py "$out/locked-$1.txt" "$target_python" >"$2"
}
# The runtime and span export (switched on by the environment alone): what every image runs.
export_for_image otel "$out/requirements.txt"
# The local SMTP sink's extra, for the mail catcher the compose test runs in place of the
# official image (docker/local/): never part of a service image.
export_for_image local "$out/requirements-local-all.txt"
grep -v -F -x -f "$out/requirements.txt" "$out/requirements-local-all.txt" >"$out/requirements-local.txt"

# pip's configuration may add local indexes: every file is checked against the lock anyway.
"$pip" wheel --quiet --require-hashes --no-deps --wheel-dir "$out/wheels" -r "$out/requirements.txt"
"$pip" wheel --quiet --require-hashes --no-deps --wheel-dir "$out/local-wheels" \
  -r "$out/requirements-local.txt"
# The suite itself, as a wheel (its dependencies are the lines above).
"$uv" build --wheel --out-dir "$out/wheels" --quiet .

for dir in wheels local-wheels; do
  (cd "$out/$dir" && for wheel in *.whl; do
    printf '/tmp/image/%s/%s --hash=sha256:%s\n' "$dir" "$wheel" "$(sha256sum "$wheel" | cut -d' ' -f1)"
  done) >"$out/$dir.txt"
done
echo "$(wc -l <"$out/wheels.txt") wheels for the images (Python $target_python), $(wc -l <"$out/local-wheels.txt") for the mail catcher, in $out/" >&2
