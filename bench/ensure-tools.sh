#!/usr/bin/env bash
# Tools `make bench` needs beyond the virtualenv: wrk and nginx from Debian's packages,
# matplotlib, psutil and py-spy in the virtualenv. Installs what is missing when it can.
set -euo pipefail
BIN="${BIN:-.venv/bin}"

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} (Debian packages)"
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "error: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
    # nginx alone is optional: its column is then reported as not run.
    command -v wrk >/dev/null 2>&1 || exit 1
  fi
fi

if ! "$BIN/python" -c 'import matplotlib, psutil' 2>/dev/null || [ ! -x "$BIN/py-spy" ]; then
  echo "installing matplotlib, psutil and py-spy into $BIN"
  "$BIN/pip" install --quiet matplotlib psutil py-spy
fi
