#!/usr/bin/env bash
# Install napari-colorize with its test dependencies and run the whole test suite (headless).
# Usage: bash scripts/run-tests.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e ".[testing]"
python -m pytest "$@"
