#!/usr/bin/env bash
# Makes sure this machine can build the CUDA backend: cuda.h + libcuda (nvidia-cuda-dev) and
# nvcc 11.8 (nvidia-cuda-toolkit) from Debian bookworm's non-free component. Quiet and instant
# when both are present; otherwise installs them (root and apt-get needed, ~1.5 GB, ~2 min).
# Elsewhere, install a CUDA 11.x toolkit yourself and point CGO_CFLAGS/CGO_LDFLAGS and NVCC at it.
set -euo pipefail

nvcc_bin=${NVCC:-nvcc}

have_header() {
	# The compiler's own search path, plus CGO_CFLAGS where a toolkit lives outside /usr/include.
	echo '#include <cuda.h>' | ${CC:-cc} ${CGO_CFLAGS:-} -E -x c - >/dev/null 2>&1
}
have_nvcc() { command -v "$nvcc_bin" >/dev/null 2>&1; }

if have_header && have_nvcc; then
	exit 0
fi

missing=()
have_header || missing+=("cuda.h (package nvidia-cuda-dev)")
have_nvcc || missing+=("nvcc (package nvidia-cuda-toolkit)")

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
	{
		echo "check-cuda: missing ${missing[*]}."
		echo "  On Debian bookworm, as root: enable the non-free component and"
		echo "    apt-get install --no-install-recommends nvidia-cuda-dev nvidia-cuda-toolkit"
		echo "  (or run .ci/cuda.sh as root). Elsewhere install CUDA 11.8 and set"
		echo "    CGO_CFLAGS=-I<cuda>/include CGO_LDFLAGS=-L<cuda>/lib64/stubs NVCC=<cuda>/bin/nvcc"
	} >&2
	exit 1
fi

# Enable contrib + non-free from the machine's own Debian mirror, in a file of our own so the
# main sources are not rewritten.
sources=/etc/apt/sources.list.d/qflow-cuda-nonfree.sources
if [[ ! -f $sources ]]; then
	mirror=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
	mirror=${mirror:-http://deb.debian.org/debian}
	cat >"$sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
echo "check-cuda: installing ${missing[*]} from Debian non-free (~1.5 GB download, a few minutes)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nvidia-cuda-dev nvidia-cuda-toolkit >/dev/null

if ! have_header || ! have_nvcc; then
	echo "check-cuda: installed nvidia-cuda-dev and nvidia-cuda-toolkit but cuda.h or nvcc is still missing" >&2
	exit 1
fi
