#!/usr/bin/env bash
# The main job on the project's own small data: validate, convert between formats, inspect, verify.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-out}
mkdir -p "$out"
expertdata validate fixtures/pendulum.npz
expertdata convert fixtures/pendulum.npz "$out/pendulum.zarr" --overwrite
expertdata convert "$out/pendulum.zarr" "$out/pendulum.h5" --overwrite
expertdata info "$out/pendulum.h5"
digest=$(expertdata info "$out/pendulum.h5" --json | python -c 'import json, sys; print(json.load(sys.stdin)["digest"])')
expertdata verify fixtures/pendulum.npz --digest "$digest"
