#!/usr/bin/env bash
# GPU throughput bench (issue 13): <= 8 minutes on one GPU, prints JSON. `--dry`: the CPU, CI-sized check.
# Details and JSON keys: scripts/bench_gpu.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TISE_OFFLINE=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$(mktemp -d)}"
exec python scripts/bench_gpu.py "$@"
