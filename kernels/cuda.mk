# CUDA: our kernels (kernels/*.cu, compiled to the committed kernels/*.ptx), the qflow-gpu
# binary and compile checks of everything behind the cuda build tag. The Makefile includes
# this file. Nothing here needs a GPU; the checks that do are bench/gpu/run.sh, run on the
# GPU host with the binaries of `make gpu-bundle` (see the README, "GPU worker").
#
#   make kernels      regenerate kernels/*.ptx (commit them)
#   make build-gpu    bin/qflow-gpu
#   make check-cuda   CI: toolchain, fresh PTX, PTX assembled for the H200 (sm_90: registers,
#                     no spills), vet and build every cuda-tagged package
#   make gpu-bundle   bin/gpu-bundle/: qflow-gpu, kernels.test, trainbench for the GPU host
#   make test-cudaemu the CUDA backend, its kernels and qflow-gpu on the CUDA emulator (no GPU,
#                     no CUDA toolkit: a C++ compiler); part of `make test`
#   make gpu-rehearsal bench/gpu/run.sh end to end here, with a bundle built for the emulator

NVCC ?= nvcc
# The PTX is committed and checked byte for byte, so compiler release and flags are pinned:
# Debian bookworm's nvcc 11.8 (PTX ISA 7.8, which the H200's CUDA 13 driver JIT-compiles).
NVCC_RELEASE := 11.8
NVCC_FLAGS   := -ptx -arch=compute_80 -std=c++17 -Werror all-warnings
CUDA_SOURCES := $(wildcard kernels/*.cu)
GPU_BUNDLE   := bin/gpu-bundle
# Smaller binaries for the trip to the GPU host.
GPU_GOFLAGS  := -tags cuda -trimpath -ldflags=-s\ -w

.PHONY: cuda-toolchain kernels check-kernels build-gpu check-cuda gpu-bundle test-cudaemu gpu-rehearsal

## cuda.h, libcuda and nvcc 11.8: installed from Debian non-free when missing (root), else a clear error
cuda-toolchain:
	@NVCC=$(NVCC) .ci/cuda.sh
	@$(NVCC) --version | grep -q 'release $(NVCC_RELEASE),' || { \
	  echo "cuda: the committed PTX is made by nvcc $(NVCC_RELEASE); $(NVCC) is: $$($(NVCC) --version | tail -n 1)" >&2; exit 1; }

kernels: cuda-toolchain
	@for src in $(CUDA_SOURCES); do \
	  $(NVCC) $(NVCC_FLAGS) -o $${src%.cu}.ptx $$src || exit 1; \
	  echo "$$src -> $${src%.cu}.ptx"; \
	done

## every kernels/*.ptx must be exactly what its .cu compiles to, and every .cu must have one
check-kernels: cuda-toolchain
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	 for src in $(CUDA_SOURCES); do \
	   name=$$(basename $$src .cu); \
	   $(NVCC) $(NVCC_FLAGS) -o "$$tmp/$$name.ptx" $$src & \
	 done; \
	 failed=0; for job in $$(jobs -p); do wait $$job || failed=1; done; \
	 [ $$failed = 0 ] || { echo "check-kernels: nvcc failed" >&2; exit 1; }; \
	 for src in $(CUDA_SOURCES); do \
	   ptx=$${src%.cu}.ptx; \
	   cmp -s "$$tmp/$$(basename $$ptx)" $$ptx || { echo "$$ptx is stale or missing: run 'make kernels' and commit it" >&2; exit 1; }; \
	 done; \
	 for ptx in kernels/*.ptx; do \
	   test -f $${ptx%.ptx}.cu || { echo "$$ptx has no .cu source: delete it" >&2; exit 1; }; \
	 done

build-gpu: cuda-toolchain
	go build -tags cuda -o bin/qflow-gpu ./cmd/qflow-gpu

check-cuda: check-kernels
	@PTXAS=$$(dirname $$(command -v $(NVCC)))/ptxas .ci/check-sass.sh
	go vet -tags cuda ./...
	go build -tags cuda -o bin/qflow-gpu ./cmd/qflow-gpu
	go test -tags cuda -c -o bin/kernels.test ./kernels
	go build -tags cuda -o bin/trainbench-cuda ./bench/trainbench
	@if command -v python3 >/dev/null; then \
	  python3 -c 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")' bench/pytorch/train_mlp.py; \
	else echo "check-cuda: no python3, bench/pytorch/train_mlp.py not syntax-checked" >&2; fi

gpu-bundle: check-cuda
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)
	go build $(GPU_GOFLAGS) -o $(GPU_BUNDLE)/qflow-gpu ./cmd/qflow-gpu
	go test $(GPU_GOFLAGS) -c -o $(GPU_BUNDLE)/kernels.test ./kernels
	go build $(GPU_GOFLAGS) -o $(GPU_BUNDLE)/trainbench ./bench/trainbench
	@du -sh $(GPU_BUNDLE)
	@echo "on the GPU host, from the repository root: bench/gpu/run.sh $(GPU_BUNDLE) <out-dir>"

## The cuda tests (kernels against the CPU backend, whole trainings), the emulator's own tests and
## qflow-gpu end to end, on the CUDA emulator: kernels/*.cu compiled for the host (cuda_emu.cc)
test-cudaemu:
	@.ci/cxx.sh
	go vet -tags cudaemu ./kernels ./cmd/qflow-gpu
	QFLOW_TEST_DATABASE_URL="$${DATABASE_URL:-$$($(PG) start)}" go test $(GO_TEST_FLAGS) -tags cudaemu ./kernels ./cmd/qflow-gpu

## bench/gpu/run.sh rehearsed without a GPU: the bundle built for the CUDA emulator, small sizes.
## It proves the script, the binaries and the summary before device time is spent on them.
GPU_REHEARSAL := bin/gpu-rehearsal
gpu-rehearsal:
	@.ci/cxx.sh
	rm -rf $(GPU_REHEARSAL) && mkdir -p $(GPU_REHEARSAL)/bundle
	go build -tags cudaemu -o $(GPU_REHEARSAL)/bundle/qflow-gpu ./cmd/qflow-gpu
	go test -tags cudaemu -c -o $(GPU_REHEARSAL)/bundle/kernels.test ./kernels
	go build -tags cudaemu -o $(GPU_REHEARSAL)/bundle/trainbench ./bench/trainbench
	@# PyTorch on the CPU where an interpreter has it (Debian's python3-torch is /usr/bin/python3's)
	python=python3; for p in python3 /usr/bin/python3; do \
	  if $$p -c 'import torch' 2>/dev/null; then python=$$p; break; fi; \
	done; \
	GPU_RUN_EMULATED=1 PYTHON=$$python bench/gpu/run.sh $(GPU_REHEARSAL)/bundle $(GPU_REHEARSAL)/out
	@for f in parity.txt trainbench-cpu.json trainbench-cuda.json summary.txt run.log; do \
	  test -s $(GPU_REHEARSAL)/out/$$f || { echo "gpu-rehearsal: run.sh wrote no $$f" >&2; exit 1; }; \
	done
	@grep -q 'cuda/cpu' $(GPU_REHEARSAL)/out/summary.txt || { echo "gpu-rehearsal: the summary has no cuda/cpu ratio" >&2; exit 1; }
