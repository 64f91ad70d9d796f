#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the demo: a local cluster against the simulator,
# a 7-day backfill into the embedded warehouse (./data), and a summary of what landed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/bmrs demo "$@"
