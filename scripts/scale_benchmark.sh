#!/usr/bin/env bash
# Time the actionlab pipeline stage by stage on a dataset in UCF-101's layout, e.g. the generated benchmark
# (`actionlab synth ROOT --family actions101 [--scale 0.1]`):
#
#   index -> extract (RGB features) -> single frame -> LSTM (3 seeds) -> evaluate -> report -> predict
#   and, when named: flow (Farneback flow features) -> flow_lstm (3 seeds) -> two_stream (fuse, per seed);
#   diff (frame-difference features) -> diff_lstm (3 seeds) -> rgb_diff (fuse with the RGB LSTM, per seed);
#   sweep (8 LSTM settings x 3 seeds); video (the video_cpu preset for VIDEO_EPOCHS epochs: time per epoch)
#
# Each stage runs under /usr/bin/time -v and appends one row to WORK/timings.tsv: wall time, CPU time, peak RSS of
# the largest process (time -v) and of all its processes together (sampled every second), the disk its outputs
# take, and the load average before and after (1/5/15 min; a busy machine slows every stage). Each stage's
# output is in WORK/logs/<stage>.log. Stages whose outputs exist are run again only with FORCE=1.
#
#   scripts/scale_benchmark.sh ROOT WORK [STAGES]
#
#   ROOT    the dataset (e.g. /work/bench/actions101_s10)
#   WORK    where the manifest, feature store, runs, report and timings go (created)
#   STAGES  comma-separated subset, in this order: index,extract,single,lstm,evaluate,report,predict (the default:
#           the two-stage RGB pipeline), flow,flow_lstm,two_stream,diff,diff_lstm,rgb_diff,sweep,video
#
# Environment: ACTIONLAB (default: .venv/bin/actionlab, else actionlab on PATH), PYTHON (default .venv/bin/python,
# else python3), SEEDS (default 0,1,2), PREDICT_VIDEOS (test videos for the predict stage, default 100),
# EXTRACT_FLAGS / TRAIN_FLAGS / VIDEO_FLAGS (extra flags for extract / the feature trainings / the video stage,
# e.g. TRAIN_FLAGS="--device cpu", VIDEO_FLAGS="--set clip.cache_frames=false" where decoded frames do not fit),
# NICE (niceness, default 0), FORCE=1 (rerun stages whose outputs exist), VIDEO_EPOCHS (default 2).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
ROOT=$1
WORK=$2
STAGES=${3:-index,extract,single,lstm,evaluate,report,predict}
HERE=$(cd "$(dirname "$0")/.." && pwd)
ACTIONLAB=${ACTIONLAB:-$([[ -x $HERE/.venv/bin/actionlab ]] && echo "$HERE/.venv/bin/actionlab" || echo actionlab)}
PYTHON=${PYTHON:-$([[ -x $HERE/.venv/bin/python ]] && echo "$HERE/.venv/bin/python" || echo python3)}
SEEDS=${SEEDS:-0,1,2}
PREDICT_VIDEOS=${PREDICT_VIDEOS:-100}
VIDEO_EPOCHS=${VIDEO_EPOCHS:-2}
NICE=${NICE:-0}
FORCE=${FORCE:-0}
read -r -a EXTRACT_EXTRA <<< "${EXTRACT_FLAGS:-}"
read -r -a TRAIN_EXTRA <<< "${TRAIN_FLAGS:-}"
read -r -a VIDEO_EXTRA <<< "${VIDEO_FLAGS:-}"

[[ -d $ROOT ]] || { echo "error: $ROOT is not a folder (generate it with: actionlab synth $ROOT --family actions101)" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time is missing (apt-get install -y time)" >&2; exit 2; }
mkdir -p "$WORK/logs" "$WORK/runs"
TSV=$WORK/timings.tsv
if [[ ! -s $TSV ]]; then
    printf 'stage\tstatus\twall_s\tuser_s\tsys_s\tpeak_rss_mb\tpeak_tree_pss_mb\tdisk_mb\titems\titems_per_s\tload_before\tload_after\tstarted\tcommand\n' > "$TSV"
fi

# Memory (kB) of a process and all its descendants: the sum of their proportional set sizes (PSS, from
# /proc/PID/smaps_rollup), so pages the processes share (libraries, torch) count once, not once per process.
tree_pss_kb() {
    local pids
    pids=$(ps -eo pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END { for (p in parent) { q = p; while (q != "" && q != 0 && q != root) q = parent[q]; if (q == root) print p } }')
    local total=0 p kb
    for p in $pids; do
        kb=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2> /dev/null || true)
        total=$(( total + ${kb:-0} ))
    done
    echo "$total"
}

# run_stage NAME OUTPUT ITEMS CMD...: time CMD, then append a row (OUTPUT: the file or folder it writes).
run_stage() {
    local name=$1 output=$2 items=$3
    shift 3
    if [[ $FORCE != 1 && -e $output ]]; then
        echo "== $name: $output exists, skipped (FORCE=1 reruns it)"
        return 0
    fi
    echo "== $name: $*"
    local load_before started peak=0 rc=0 start end
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    started=$(date -u +%FT%TZ)
    start=$(date +%s.%N)
    nice -n "$NICE" /usr/bin/time -v -o "$WORK/logs/$name.time" "$@" > "$WORK/logs/$name.log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2> /dev/null; do
        local now
        now=$(tree_pss_kb "$pid")
        (( now > peak )) && peak=$now
        sleep 1
    done
    wait "$pid" || rc=$?
    end=$(date +%s.%N)
    local wall user sys rss disk rate
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    user=$(awk -F': ' '/User time/ { print $2 }' "$WORK/logs/$name.time")
    sys=$(awk -F': ' '/System time/ { print $2 }' "$WORK/logs/$name.time")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$WORK/logs/$name.time")
    disk=$( [[ -e $output ]] && du -sk "$output" | awk '{ printf "%.1f", $1 / 1024 }' || echo 0)
    rate=$(awk -v n="$items" -v w="$wall" 'BEGIN { if (n > 0 && w > 0) printf "%.2f", n / w; else print "" }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$([[ $rc == 0 ]] && echo ok || echo "exit $rc")" \
        "$wall" "$user" "$sys" "$rss" "$(( peak / 1024 ))" "$disk" "$items" "$rate" "$load_before" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$started" "$*" >> "$TSV"
    echo "   $name: ${wall}s wall, peak RSS ${rss} MB (all its processes together, PSS: $(( peak / 1024 )) MB), ${disk} MB on disk, exit $rc"
    if [[ $rc != 0 ]]; then
        tail -n 20 "$WORK/logs/$name.log" >&2
        exit "$rc"
    fi
}

want() { [[ ",$STAGES," == *",$1,"* ]]; }
count_videos() { [[ -s $WORK/manifest.csv ]] && "$PYTHON" -c "
from actionlab.data.manifest import read_manifest
print(len(read_manifest('$WORK/manifest.csv').records))" || echo 0; }
IFS=, read -r -a SEED_LIST <<< "$SEEDS"
SEED_RUNS=()
for s in "${SEED_LIST[@]}"; do SEED_RUNS+=("$WORK/runs/lstm/seed-$s"); done

echo "timing the pipeline on $ROOT in $WORK ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
want index && run_stage index "$WORK/manifest.csv" "$(find "$ROOT" -name '*.avi' | wc -l)" \
    "$ACTIONLAB" index "$ROOT" -o "$WORK/manifest.csv" --split 1
VIDEOS=$(count_videos)
want extract && run_stage extract "$WORK/rgb.h5" "$VIDEOS" \
    "$ACTIONLAB" extract "$WORK/manifest.csv" -o "$WORK/rgb.h5" "${EXTRACT_EXTRA[@]}"
want single && run_stage single "$WORK/runs/single" "$VIDEOS" \
    "$ACTIONLAB" train --features "$WORK/rgb.h5" --preset single_frame --run "$WORK/runs/single" "${TRAIN_EXTRA[@]}"
want lstm && run_stage lstm "$WORK/runs/lstm" "$VIDEOS" \
    "$ACTIONLAB" train --features "$WORK/rgb.h5" --model lstm --run "$WORK/runs/lstm" --seeds "$SEEDS" "${TRAIN_EXTRA[@]}"
want evaluate && run_stage evaluate "$WORK/evaluate.json" 0 \
    "$ACTIONLAB" evaluate "${SEED_RUNS[0]}" --baseline "$WORK/runs/single" --json
if want evaluate && [[ -s $WORK/logs/evaluate.log ]]; then
    # the log holds the JSON (and maybe log lines before it): keep it for later reading
    cp "$WORK/logs/evaluate.log" "$WORK/evaluate.json"
fi
want report && run_stage report "$WORK/report" 0 \
    "$ACTIONLAB" report "$WORK/runs/single" "${SEED_RUNS[@]}" --baseline "$WORK/runs/single" -o "$WORK/report/report.html"
if want predict; then
    mapfile -t TEST_VIDEOS < <("$PYTHON" -c "
from actionlab.data.manifest import read_manifest
m = read_manifest('$WORK/manifest.csv')
for r in [r for r in m.records if r.split == 'test'][:$PREDICT_VIDEOS]:
    print(m.root / r.path)")
    run_stage predict "$WORK/predict.json" "${#TEST_VIDEOS[@]}" \
        "$ACTIONLAB" predict "${TEST_VIDEOS[@]}" --run "${SEED_RUNS[0]}" --json
    cp "$WORK/logs/predict.log" "$WORK/predict.json"
fi
# second_stream NAME MODALITY FUSED: a motion stream's store (WORK/NAME.h5), its LSTM (3 seeds) and its late
# fusion with the RGB LSTM, per seed (runs/FUSED).
second_stream() {
    local name=$1 modality=$2 fused=$3 runs=() i
    for i in "${SEED_LIST[@]}"; do runs+=("$WORK/runs/${name}_lstm/seed-$i"); done
    want "$name" && run_stage "$name" "$WORK/$name.h5" "$VIDEOS" \
        "$ACTIONLAB" extract "$WORK/manifest.csv" -o "$WORK/$name.h5" --modality "$modality" "${EXTRACT_EXTRA[@]}"
    want "${name}_lstm" && run_stage "${name}_lstm" "$WORK/runs/${name}_lstm" "$VIDEOS" \
        "$ACTIONLAB" train --features "$WORK/$name.h5" --model lstm --run "$WORK/runs/${name}_lstm" --seeds "$SEEDS" \
        "${TRAIN_EXTRA[@]}"
    if want "$fused"; then
        for i in "${!SEED_LIST[@]}"; do
            run_stage "${fused}_${SEED_LIST[$i]}" "$WORK/runs/$fused/seed-${SEED_LIST[$i]}" 0 \
                "$ACTIONLAB" fuse "${SEED_RUNS[$i]}" "${runs[$i]}" --run "$WORK/runs/$fused/seed-${SEED_LIST[$i]}"
        done
    fi
}
second_stream flow flow two_stream
second_stream diff diff rgb_diff
want sweep && run_stage sweep "$WORK/sweep" 8 \
    "$ACTIONLAB" sweep --features "$WORK/rgb.h5" --model lstm --out "$WORK/sweep" --grid model.hidden_size=64,128 \
    --grid model.input_dropout=0.5,0.8 --grid optim.lr=0.001,0.003 "${TRAIN_EXTRA[@]}"
want video && run_stage video "$WORK/runs/video" "$VIDEOS" \
    "$ACTIONLAB" train --manifest "$WORK/manifest.csv" --preset video_cpu --epochs "$VIDEO_EPOCHS" --run "$WORK/runs/video" \
    "${VIDEO_EXTRA[@]}"
echo "timings: $TSV"
column -t -s $'\t' "$TSV" | cut -c1-220
