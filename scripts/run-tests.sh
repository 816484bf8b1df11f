#!/usr/bin/env bash
# Install napari-colorize with its test dependencies and run the whole test suite headless
# (the napari widget tests draw under a virtual X server).
# Usage: bash scripts/run-tests.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

X_PACKAGES="xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1
  libdbus-1-3 libfontconfig1"
missing=$(dpkg-query -W -f='${Status} ${Package}\n' $X_PACKAGES 2>/dev/null | grep -vc "^install ok installed" || true)
if ! command -v xvfb-run >/dev/null 2>&1 || [ "${missing:-0}" != "0" ] \
   || [ "$(dpkg-query -W -f='${Package}\n' $X_PACKAGES 2>/dev/null | wc -l)" -lt "$(echo $X_PACKAGES | wc -w)" ]; then
  SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $X_PACKAGES >/dev/null
fi

python -m pip install --quiet -e ".[testing]"
xvfb-run -a -s "-screen 0 1280x1024x24" python -m pytest "$@"
