#!/usr/bin/env bash
# Makes sure cgo can build C++17 (the CUDA emulator, kernels/cuda_emu.cc): quiet and instant
# when it can; otherwise installs Debian's g++ (root and apt-get needed), or says what to do.
set -euo pipefail

cxx=${CXX:-g++}
works() { echo 'int main() { if constexpr (true) return 0; }' | "$cxx" -std=c++17 -x c++ -o /dev/null - >/dev/null 2>&1; }

works && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	echo "test-cudaemu: no C++17 compiler ($cxx). On Debian, as root: apt-get install g++ (or set CXX)." >&2
	exit 1
fi
echo "installing g++ for the CUDA emulator" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends g++ >/dev/null
works || { echo "test-cudaemu: g++ installed but cannot compile C++17" >&2; exit 1; }
