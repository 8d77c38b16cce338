#!/usr/bin/env bash
# The README's two-stage commands with default settings only, on one generated dataset family, 3 seeds each:
#   bash scripts/generalisation.sh FAMILY OUT [SEEDS]
# prints the single-frame and LSTM tables (mean ± std over seeds). Used to choose and check the defaults.
set -euo pipefail
family=${1:?family (actionlab synth --help lists them)}; out=${2:?output folder}; seeds=${3:-0,1,2}
bin=$(dirname "$0")/../.venv/bin
mkdir -p "$out"
[ -e "$out/data/.complete" ] || { "$bin/actionlab" synth "$out/data" --family "$family" && touch "$out/data/.complete"; }
[ -e "$out/manifest.csv" ] || "$bin/actionlab" index "$out/data" -o "$out/manifest.csv"
"$bin/actionlab" extract "$out/manifest.csv" -o "$out/features.h5"
"$bin/actionlab" train --features "$out/features.h5" --preset single_frame --run "$out/runs/single_frame" \
    --seeds "$seeds" --resume | tail -6
"$bin/actionlab" train --features "$out/features.h5" --model lstm --run "$out/runs/lstm" \
    --seeds "$seeds" --resume | tail -6
