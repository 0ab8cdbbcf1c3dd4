#!/usr/bin/env bash
# Assembles every committed kernels/*.ptx for the H200 (sm_90) with ptxas, as the driver's JIT
# will when qflow-gpu starts there, and prints each kernel's registers and shared memory. It
# fails if a module does not assemble, if a kernel spills registers to local memory, or if an
# SGEMM kernel needs more than 128 registers a thread: cuda_matmul.go plans for two resident
# 256-thread blocks per SM, and an SM has 65,536 registers.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${SASS_ARCH:-sm_90}
ptxas_bin=${PTXAS:-ptxas}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
printf '%-24s %9s %10s %14s\n' "kernel ($arch)" registers "smem bytes" "spill st+ld B"
for ptx in kernels/*.ptx; do
	if ! "$ptxas_bin" -arch="$arch" -v -o "$tmp/out.cubin" "$ptx" >"$tmp/log" 2>&1; then
		cat "$tmp/log" >&2
		echo "check-sass: $ptx does not assemble for $arch" >&2
		status=1
		continue
	fi
	# ptxas -v prints, per kernel: Compiling entry function 'NAME' / N bytes stack frame, S bytes
	# spill stores, L bytes spill loads / Used R registers[, M bytes smem, ...]
	awk -v file="$ptx" '
		/Compiling entry function/ { match($0, /'"'"'[^'"'"']+'"'"'/); name = substr($0, RSTART + 1, RLENGTH - 2) }
		/spill stores/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "bytes" && $(i+2) == "spill") spill[name] += $i } }
		/Used [0-9]+ registers/ {
			for (i = 1; i <= NF; i++) { if ($i == "Used") regs = $(i+1); if ($(i+1) == "bytes" && $(i+2) ~ /^smem/) smem = $i }
			printf "%-24s %9d %10d %14d\n", name, regs, smem, spill[name]
			if (spill[name] > 0) { printf "check-sass: %s spills %d bytes in %s\n", name, spill[name], file > "/dev/stderr"; bad = 1 }
			if (name ~ /^sgemm_(large|medium|small)_/ && regs > 128) { printf "check-sass: %s uses %d registers, more than two blocks per SM allow\n", name, regs > "/dev/stderr"; bad = 1 }
			smem = 0
		}
		END { exit bad }' "$tmp/log" || status=1
done
exit $status
