#!/usr/bin/env bash
# The two-stream pipeline with default settings only, on one generated dataset family:
#   bash scripts/two_stream.sh FAMILY OUT [SEEDS]
# synth, index, extract RGB and optical flow features, train the default LSTM on each (--seeds), fuse each seed's
# RGB and flow runs (weight chosen on val), then print test top-1 per stream (mean ± std over seeds) and the
# per-class accuracy of the classes only frame order tells apart. Rerunning reuses what is on disk.
# FLOW_CNN=1 also fine-tunes MobileNetV2 on the flow per seed (a raw flow store, `actionlab finetune`), extracts
# flow features with it (--flow-from the raw store), trains the LSTM on them and fuses it with the RGB LSTM.
# FLOW_FLAGS adds extract options to the flow store (e.g. FLOW_FLAGS="--flow-downscale 1" for full-size flow).
# DIFF=1 also extracts frame differences (--modality diff), trains the LSTM on them and fuses it with the RGB LSTM
# (runs/rgb_diff) and with the RGB + flow run (runs/three_stream).
# ACTIONLAB_BIN overrides the folder of the actionlab and python executables (default: the repository's .venv).
set -euo pipefail
family=${1:?family (actionlab synth --help lists them)}; out=${2:?output folder}; seeds=${3:-0,1,2}
bin=${ACTIONLAB_BIN:-$(dirname "$0")/../.venv/bin}
mkdir -p "$out"
[ -e "$out/data/.complete" ] || { "$bin/actionlab" synth "$out/data" --family "$family" && touch "$out/data/.complete"; }
[ -e "$out/manifest.csv" ] || "$bin/actionlab" index "$out/data" -o "$out/manifest.csv"
"$bin/actionlab" extract "$out/manifest.csv" -o "$out/features.h5"
read -r -a flow_flags <<< "${FLOW_FLAGS:-}"
"$bin/actionlab" extract "$out/manifest.csv" -o "$out/flow.h5" --modality flow "${flow_flags[@]}"
"$bin/actionlab" train --features "$out/features.h5" --model lstm --run "$out/runs/lstm" --seeds "$seeds" \
    --resume | tail -3
"$bin/actionlab" train --features "$out/flow.h5" --model lstm --run "$out/runs/flow_lstm" --seeds "$seeds" \
    --resume | tail -3
for seed in ${seeds//,/ }; do
    "$bin/actionlab" fuse "$out/runs/lstm/seed-$seed" "$out/runs/flow_lstm/seed-$seed" \
        --run "$out/runs/two_stream/seed-$seed"
done
if [ "${DIFF:-0}" = 1 ]; then  # also: the frame-difference stream, fused with RGB and with RGB + flow
    "$bin/actionlab" extract "$out/manifest.csv" -o "$out/diff.h5" --modality diff
    "$bin/actionlab" train --features "$out/diff.h5" --model lstm --run "$out/runs/diff_lstm" --seeds "$seeds" \
        --resume | tail -3
    for seed in ${seeds//,/ }; do
        "$bin/actionlab" fuse "$out/runs/lstm/seed-$seed" "$out/runs/diff_lstm/seed-$seed" \
            --run "$out/runs/rgb_diff/seed-$seed"
        "$bin/actionlab" fuse "$out/runs/two_stream/seed-$seed" "$out/runs/diff_lstm/seed-$seed" \
            --run "$out/runs/three_stream/seed-$seed"
    done
fi
if [ "${FLOW_CNN:-0}" = 1 ]; then  # also: flow features from a CNN fine-tuned on the flow (actionlab finetune)
    "$bin/actionlab" extract "$out/manifest.csv" -o "$out/flow_raw.h5" --modality flow --flow-output raw
    for seed in ${seeds//,/ }; do
        cnn="$out/runs/flow_cnn/seed-$seed"
        [ -e "$cnn/backbone.pt" ] || "$bin/actionlab" finetune "$out/flow_raw.h5" --out "$cnn" --seed "$seed" | tail -1
        "$bin/actionlab" extract "$out/manifest.csv" -o "$out/flow_ft_$seed.h5" --modality flow \
            --weights "$cnn/backbone.pt" --flow-from "$out/flow_raw.h5"
        "$bin/actionlab" train --features "$out/flow_ft_$seed.h5" --model lstm --run "$out/runs/flow_ft_lstm/seed-$seed" \
            --seed "$seed" --resume | tail -1
        "$bin/actionlab" fuse "$out/runs/lstm/seed-$seed" "$out/runs/flow_ft_lstm/seed-$seed" \
            --run "$out/runs/ft_two_stream/seed-$seed"
    done
fi
"$bin/python" - "$out/runs" "$seeds" "$family" <<'EOF'
import json, statistics, sys
from pathlib import Path

from actionlab.synth.families import get_family

runs, seeds = Path(sys.argv[1]), sys.argv[2].split(",")
streams = {"rgb lstm": "lstm", "flow lstm": "flow_lstm", "two-stream (late)": "two_stream"}
if (runs / "three_stream").is_dir():  # DIFF=1
    streams.update({"frame-difference lstm": "diff_lstm", "two-stream, rgb + differences": "rgb_diff",
                    "three streams": "three_stream"})
if (runs / "ft_two_stream").is_dir():  # FLOW_CNN=1
    streams.update({"flow CNN (fine-tuned on flow)": "flow_cnn", "flow lstm on its features": "flow_ft_lstm",
                    "two-stream with it (late)": "ft_two_stream"})
metrics = {name: [json.loads((runs / d / f"seed-{s}" / "metrics.json").read_text()) for s in seeds]
           for name, d in streams.items()}
classes = metrics["rgb lstm"][0]["classes"]
motion = [c for pair in get_family(sys.argv[3]).pairs for c in pair]  # told apart by frame order only

def mean_std(values):
    values = [100 * v for v in values]
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.1f}"

print(f"test top-1 over seeds {','.join(seeds)} (mean ± std, %)")
print("| run | top-1 | " + " | ".join(motion) + " |")
print("|---|---|" + "---|" * len(motion))
for name, ms in metrics.items():
    cells = [mean_std([m["per_class_accuracy"][classes.index(c)] for m in ms]) for c in motion]
    print(f"| {name} | {mean_std([m['top1'] for m in ms])} | " + " | ".join(cells) + " |")
weights = [m["fusion_weights"][0] for m in metrics["two-stream (late)"]]
print(f"RGB weight chosen on val per seed: {weights}")
EOF
