#!/usr/bin/env bash
# The checks that need the GPU, run on the GPU host (no Go toolchain needed there): build the
# binaries on a build host with `make gpu-bundle`, copy bin/gpu-bundle and this checkout over,
# then from the repository root:
#
#   bench/gpu/run.sh [BUNDLE [OUT]]      (defaults: bin/gpu-bundle, bench/out/gpu)
#
# It writes seven files into OUT: parity.txt (every CUDA kernel and whole training runs against
# the CPU backend, go test -v); trainbench-{cpu,cuda}.json and pytorch-{wide,seed}.json
# (samples/s); summary.txt (the ratios the issue asks for); run.log (nvidia-smi, qflow-gpu's
# device probe, the SGEMM and per-operation benchmarks, every command's output). Exit status 1
# if a check failed.
#
# GPU_RUN_EMULATED=1 is the rehearsal on a machine without a GPU (make gpu-rehearsal): a bundle
# built for the CUDA emulator, small training sizes, two parity tests and one benchmark (make
# test-cudaemu runs them all), no nvidia-smi, PyTorch on the CPU where it is installed. It
# proves the script, the binaries and the summary work before device time is spent on them;
# its figures mean nothing. PYTHON names the interpreter (default python3).
set -uo pipefail
emulated=${GPU_RUN_EMULATED:-0}
python=${PYTHON:-python3}
bundle=${1:-bin/gpu-bundle}
out=${2:-bench/out/gpu}
[[ -d $bundle ]] || { echo "no $bundle: run 'make gpu-bundle' on the build host and copy it here" >&2; exit 1; }
mkdir -p "$out"
bundle=$(cd "$bundle" && pwd)
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/../.."
status=0

log=$out/run.log
: >"$log"

# step NAME [FILE] -- CMD...: run CMD with its output appended to run.log (or written to FILE),
# show the tail, remember failures.
step() {
	local name=$1 file=$log
	shift
	if [[ $1 != -- ]]; then
		file=$1
		shift
	fi
	shift
	echo "== $name: $*" | tee -a "$log"
	local started=$SECONDS tmp
	tmp=$(mktemp)
	"$@" >"$tmp" 2>&1
	local rc=$?
	if [[ $file == "$log" ]]; then cat "$tmp" >>"$log"; else cp "$tmp" "$file"; fi
	tail -n 8 "$tmp" | sed 's/^/   /'
	rm -f "$tmp"
	echo "   (exit $rc, $((SECONDS - started))s)" | tee -a "$log"
	if [[ $rc -ne 0 ]]; then
		status=1
	fi
	return $rc
}

for bin in qflow-gpu kernels.test trainbench; do
	[[ -x $bundle/$bin ]] || { echo "missing $bundle/$bin: run 'make gpu-bundle' on the build host" >&2; exit 1; }
done
if [[ $emulated == 1 ]]; then
	echo "== emulated: a rehearsal on the CUDA emulator; no nvidia-smi, small sizes" | tee -a "$log"
	parity='^TestCUDA(DescribesItsDevice|AdamMatchesCPUBitForBit)$' bench=CUDAOperationOverhead bench_time=1x
	wide_samples=2048 wide_epochs=1 seed_samples=4096 seed_epochs=1
	cpu_sizes=(-seed-samples "$seed_samples" -seed-epochs "$seed_epochs" -wide-samples "$wide_samples" -wide-epochs "$wide_epochs")
else
	parity=CUDA bench=CUDA bench_time=2s
	wide_samples=65536 wide_epochs=5 seed_samples=20000 seed_epochs=3
	cpu_sizes=() # trainbench's defaults: the wide network is slow on the CPU
	step nvidia-smi -- nvidia-smi
fi
# The binaries link libcuda.so.1; some GPU images keep the driver outside the loader's path.
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
	export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

# qflow-gpu starts the backend as a worker would (context, PTX JIT), prints the device, exits 0.
step startup -- "$bundle/qflow-gpu" device

step parity "$out/parity.txt" -- "$bundle/kernels.test" -test.run "$parity" -test.v -test.count=1 -test.timeout 20m
step kernels-bench -- "$bundle/kernels.test" -test.run '^$' -test.bench "$bench" -test.benchtime "$bench_time"

# The CPU backend with trainbench's defaults (the wide network is slow there); the GPU and
# PyTorch on enough batches to reach a steady state.
step trainbench-cpu -- "$bundle/trainbench" -backends cpu "${cpu_sizes[@]}" -out "$out/trainbench-cpu.json"
step trainbench-cuda -- "$bundle/trainbench" -backends cuda -seed-samples "$seed_samples" -seed-epochs "$seed_epochs" \
	-wide-samples "$wide_samples" -wide-epochs "$wide_epochs" -out "$out/trainbench-cuda.json"
if [[ $emulated == 1 ]] && ! "$python" -c 'import torch' 2>/dev/null; then
	echo "== pytorch: skipped, $python has no torch (on Debian: apt-get install python3-torch)" | tee -a "$log"
else
	step pytorch-wide -- "$python" bench/pytorch/train_mlp.py --network wide --samples "$wide_samples" --epochs "$wide_epochs" --out "$out/pytorch-wide.json"
	step pytorch-seed -- "$python" bench/pytorch/train_mlp.py --network seed --samples "$seed_samples" --epochs "$seed_epochs" --out "$out/pytorch-seed.json"
fi

"$python" - "$out" >"$out/summary.txt" 2>&1 <<'PY'
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return {r["network"]: r for r in json.load(f)["results"]}
    except (OSError, ValueError, KeyError) as e:
        print("no %s: %s" % (name, e))
        return {}
cpu, gpu = load("trainbench-cpu.json"), load("trainbench-cuda.json")
torch = {**load("pytorch-seed.json"), **load("pytorch-wide.json")}
# FLOPs per sample of one training step of the wide network: forward and weight gradients
# 2·(256·1024 + 1024·1024 + 1024·10) each, input gradients of layers 2 and 3 2·(1024·1024 + 1024·10).
wide_flops = 2 * 2 * (256 * 1024 + 1024 * 1024 + 1024 * 10) + 2 * (1024 * 1024 + 1024 * 10)
for net in ("seed", "wide"):
    line = [net]
    for name, src in (("cpu", cpu), ("cuda", gpu), ("pytorch", torch)):
        if net in src:
            line.append("%s %.0f samples/s" % (name, src[net]["samples_per_sec"]))
    if net in cpu and net in gpu:
        line.append("cuda/cpu %.1fx" % (gpu[net]["samples_per_sec"] / cpu[net]["samples_per_sec"]))
    if net in torch and net in gpu:
        line.append("cuda/pytorch %.2f" % (gpu[net]["samples_per_sec"] / torch[net]["samples_per_sec"]))
    if net == "wide" and net in gpu:
        line.append("cuda %.1f TFLOP/s" % (gpu[net]["samples_per_sec"] * wide_flops / 1e12))
    if net == "wide" and net in torch:
        line.append("pytorch %.1f TFLOP/s" % (torch[net]["samples_per_sec"] * wide_flops / 1e12))
    print(", ".join(line))
if "wide" in gpu and "wide" in cpu and "wide" in torch:
    fast = gpu["wide"]["samples_per_sec"] / cpu["wide"]["samples_per_sec"] >= 50
    near = gpu["wide"]["samples_per_sec"] >= torch["wide"]["samples_per_sec"] / 2
    print("goal (wide: >= 50x the CPU backend, within 2x of PyTorch): %s, %s" % (
        "met" if fast else "NOT met", "met" if near else "NOT met"))
PY
cat "$out/summary.txt"
echo "results in $out"
exit $status
