#!/usr/bin/env bash
# autoact GPU benchmark suite (see bench/gpu/README.md).
#
#   bench/gpu/run.sh [--out DIR] [--report FILE] [--cpu] [--threads N] [--budget SECONDS] [--skip-train] [--skip-infer]
#                    [--prebuilt] [--batch-tokens N[,N...]] [--recompute on|off[,...]] [--check] [--profile]
#
# On a machine with an NVIDIA GPU and CUDA: builds llama-bench and autoact-train with CUDA for
# the local GPU's architecture, writes synthetic ~0.5B and ~1.5B models (F16 and Q8_0), runs
# the inference and training benchmarks and writes one result file per run, then the report.
# Without a GPU (or with --cpu) it runs the same steps on the CPU backend with tiny models.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/bench/results"
report=""
force_cpu=0
budget=480
skip_train=0
skip_infer=0
prebuilt=0
check=0
profile=()
batch_tokens="" # the trainer's default
recompute=""    # the trainer's default (auto: on with a GPU)
threads=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --report) report="$2"; shift 2 ;;
        --cpu) force_cpu=1; shift ;;
        --budget) budget="$2"; shift 2 ;;
        --threads) threads=(--threads "$2"); shift 2 ;;
        --skip-train) skip_train=1; shift ;;
        --skip-infer) skip_infer=1; shift ;;
        --prebuilt) prebuilt=1; shift ;;
        --check) check=1; shift ;;
        --profile) profile=(--profile); shift ;;
        --batch-tokens) batch_tokens="$2"; shift 2 ;;
        --recompute) recompute="$2"; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see bench/gpu/README.md)" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
[ -n "$report" ] || report="$(dirname "$out")/REPORT.md"
case "$report" in /*) ;; *) report="$PWD/$report" ;; esac
cd "$root" || exit 1

log() { printf '[gpu-suite %4ds] %s\n' "$SECONDS" "$*" >&2; }
fail() { echo "run.sh: $*" >&2; exit 1; }

# Node.js: the machine may have none; carry node's binary and point NODE at it.
NODE="${NODE:-$(command -v node || true)}"
[ -n "$NODE" ] && [ -x "$NODE" ] || fail "node not found: copy node's binary (same major version as here, 20) and run with NODE=/path/to/node"
cli="$root/dist/src/cli/main.js"
if [ ! -f "$cli" ]; then
    [ -f "$root/node_modules/typescript/bin/tsc" ] || fail "$cli is missing: run 'npx tsc -p tsconfig.json' before copying the checkout"
    log "compiling TypeScript"
    "$NODE" "$root/node_modules/typescript/bin/tsc" -p "$root/tsconfig.json" || fail "tsc failed"
fi
autoact() { "$NODE" "$cli" "$@"; }
# synthetic models and file hashes are cached here, not in the home folder
export AUTOACT_CACHE="${AUTOACT_CACHE:-$root/.cache/autoact}"

backend=cpu
if [ "$force_cpu" = 0 ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    backend=cuda
    export PATH="$PATH:/usr/local/cuda/bin"
    command -v nvcc >/dev/null 2>&1 || fail "an NVIDIA GPU is present but nvcc (the CUDA toolkit) is not on PATH"
    # CMake reads CUDAARCHS: build the kernels for this GPU only (sm_90 on H100/H200), far faster than all archs
    export CUDAARCHS="${CUDAARCHS:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')}"
    log "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1); CUDA arch $CUDAARCHS"
else
    log "no NVIDIA GPU found (or --cpu): CPU backend with tiny models"
fi

if [ "$backend" = cuda ]; then
    models="synth:0.5b:q8_0 synth:0.5b:f16 synth:1.5b:q8_0 synth:1.5b:f16"
    # issue 8's GPU shapes: Q8_0 beside F16 of the same model, all targets, ctx 512
    train_models="synth:0.5b:q8_0 synth:0.5b:f16 synth:1.5b:q8_0 synth:1.5b:f16"
    parallel="1,2,4,8,16,32"; pp=512; tg=128; reps=5; train_steps=6; train_ctx=512
else
    models="synth:tiny:f32 synth:tiny:q8_0"
    train_models="synth:tiny:f32"
    parallel="1,4"; pp=64; tg=16; reps=2; train_steps=3; train_ctx=32
fi

if [ "$skip_infer" = 1 ]; then models=""; fi
if [ "$skip_train" = 1 ]; then train_models=""; fi

# Synthetic models are written in the background while the native build compiles.
log "writing synthetic models: $models $train_models"
(
    pids=()
    for m in $(printf '%s\n' $models $train_models | sort -u); do
        preset="${m#synth:}"; type="${preset#*:}"; preset="${preset%%:*}"
        f="$AUTOACT_CACHE/bench/synth-$preset-$type.gguf"
        [ -f "$f" ] || { autoact model synth --preset "$preset" --type "$type" --seed 1 --out "$f" >/dev/null & pids+=($!); }
    done
    for p in ${pids[@]+"${pids[@]}"}; do wait "$p" || exit 1; done
) &
models_pid=$!

if [ "$prebuilt" = 1 ]; then
    # binaries built on another machine (bench/gpu/pack.sh): no build here; the CUDA libraries
    # they link may live in Python's nvidia-* packages rather than the toolkit
    for f in autoact-train llama-bench; do
        [ -x "native/build/$backend/bin/$f" ] || { wait "$models_pid"; fail "--prebuilt: native/build/$backend/bin/$f is missing"; }
    done
    if ldd "native/build/$backend/bin/autoact-train" | grep -q "not found"; then
        libs="$(python3 -c 'import glob, os, site; print(":".join(sorted({os.path.dirname(p) for d in site.getsitepackages() for p in glob.glob(os.path.join(d, "nvidia", "*", "lib", "lib*.so*"))})))' 2>/dev/null || true)"
        export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$libs"
        ldd "native/build/$backend/bin/autoact-train" | grep "not found" && { wait "$models_pid"; fail "--prebuilt: libraries missing (above)"; }
    fi
    log "prebuilt binaries in native/build/$backend/bin"
else
    log "native build ($backend): llama-bench and autoact-train"
    if ! autoact native build --backend "$backend" --jobs "$(nproc)"; then
        wait "$models_pid"
        fail "native build failed"
    fi
fi
status=0
if [ "$check" = 1 ]; then
    # while the models are written: the trainer's correctness checks on this backend
    log "the trainer's correctness checks on $backend (bench/gpu/trainer-check.mjs)"
    "$NODE" "$here/trainer-check.mjs" --backend "$backend" | tee "$out/trainer-check-$backend.jsonl" || { log "a trainer check failed"; status=1; }
fi
wait "$models_pid" || fail "writing synthetic models failed"
log "build and models ready"

# Does node-llama-cpp have a binary for this backend here? If not, inference runs llama-bench only.
engine=autoact
if [ "$backend" != cpu ]; then
    if ! "$NODE" --input-type=module -e "const m = await import('node-llama-cpp'); const l = await m.getLlama({ gpu: '$backend', build: 'never', progressLogs: false }); process.exit(l.gpu === '$backend' ? 0 : 1);" >/dev/null 2>&1; then
        engine=llama-bench
        log "node-llama-cpp has no usable $backend binary here: inference results come from llama-bench alone"
    fi
fi

for m in $models; do
    if [ "$SECONDS" -ge "$budget" ]; then log "budget of ${budget}s spent: skipping inference of $m"; status=3; continue; fi
    log "inference: $m"
    if [ "$engine" = autoact ]; then
        autoact bench infer --model "$m" --gpu "$backend" --pp "$pp" --tg "$tg" --reps "$reps" --parallel "$parallel" "${threads[@]}" \
            --lora zero:8 --compare-llama-bench --results-dir "$out" || { log "inference of $m failed"; status=1; }
    else
        autoact bench infer --model "$m" --gpu "$backend" --engine llama-bench --pp "$pp" --tg "$tg" --reps "$reps" "${threads[@]}" \
            --results-dir "$out" || { log "inference of $m failed"; status=1; }
    fi
done

if [ "$skip_train" = 0 ]; then
    read -r -a sizes <<< "${batch_tokens//,/ }"
    [ "${#sizes[@]}" -gt 0 ] || sizes=("")
    read -r -a modes <<< "${recompute//,/ }"
    [ "${#modes[@]}" -gt 0 ] || modes=("")
    # every model at the first micro-batch size (and recompute mode) before any at the next, so
    # that a spent budget cuts the extras, not a model of the issue's shapes
    for bt in "${sizes[@]}"; do
        for rc in "${modes[@]}"; do
            for m in $train_models; do
                if [ "$SECONDS" -ge "$budget" ]; then log "budget of ${budget}s spent: skipping training of $m${bt:+ at $bt tokens}${rc:+ (recompute $rc)}"; status=3; continue; fi
                log "training: $m${bt:+ (micro-batches of $bt tokens)}${rc:+ (recompute $rc)}"
                # beside llama-bench pp<ctx> of the same file and a PyTorch LoRA of the same shape (bf16 on the GPU; skipped where torch is absent)
                autoact bench train --model "$m" --gpu "$backend" --steps "$train_steps" --ctx "$train_ctx" ${bt:+--batch-tokens "$bt"} ${rc:+--recompute "$rc"} \
                    "${threads[@]}" ${profile[@]+"${profile[@]}"} --compare-torch --results-dir "$out" || { log "training on $m failed"; status=1; }
            done
        done
    done
fi

autoact bench report --in "$out" --out "$report" || status=1
log "done in ${SECONDS}s (status $status): results in $out, report $report"
exit "$status"
