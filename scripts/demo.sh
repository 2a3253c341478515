#!/usr/bin/env bash
# The main job on the project's own small data: record with a reference expert, validate, convert,
# inspect, verify the conversion by its digest, plot, clone by behaviour cloning.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-demo-out}
mkdir -p "$out"
expertdata record Pendulum-v1 --expert pendulum --episodes 10 --num-envs 2 --out "$out/pendulum.zarr" --overwrite
expertdata validate "$out/pendulum.zarr"
digest=$(expertdata info "$out/pendulum.zarr" --json | python -c 'import json, sys; print(json.load(sys.stdin)["digest"])')
expertdata convert "$out/pendulum.zarr" "$out/pendulum.h5" --overwrite
expertdata info "$out/pendulum.h5"
expertdata verify "$out/pendulum.h5" --digest "$digest"
expertdata plot "$out/pendulum.h5" --out "$out/pendulum.png"
expertdata train bc "$out/pendulum.h5" --env Pendulum-v1 --out "$out/pendulum-bc" --overwrite --seed 0 \
    --n-epochs 300 --learning-rate 1e-3
