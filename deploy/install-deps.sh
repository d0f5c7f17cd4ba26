#!/usr/bin/env bash
# Install every Debian 12 package natx needs to build, test and benchmark.
# Idempotent; run as root (CI is root). Set NATX_SKIP_APT=1 to skip when packages are known present.
set -euo pipefail

PKGS=(
	# build
	build-essential cmake pkg-config git clang llvm libclang-rt-14-dev
	# data plane and eBPF
	liburing-dev libbpf-dev bpftool linux-libc-dev libelf-dev zlib1g-dev
	# crypto, hashing, encoding
	android-libboringssl-dev libxxhash-dev libsecp256k1-dev protobuf-c-compiler libprotobuf-c-dev
	# control daemon
	libcjson-dev libinih-dev libmicrohttpd-dev libsqlite3-dev sqlite3
	# tests
	libcriterion-dev iproute2 iptables conntrack curl jq socat netcat-openbsd procps psmisc
	coturn python3 python3-cryptography
	# benchmark peers
	iperf3 haproxy nginx libnginx-mod-stream
	# js-libp2p interop peers
	nodejs
)

if [ "${NATX_SKIP_APT:-0}" = 1 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps.sh: must run as root (apt-get)" >&2
	exit 2
fi

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && command -v npm >/dev/null 2>&1; then
	echo "install-deps.sh: all ${#PKGS[@]} packages present"
	exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The benchmark peers must not run as system services: bench/ starts its own instances.
for svc in nginx haproxy coturn; do
	systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done
# Debian's own nodejs ships npm separately; nodesource's nodejs bundles it (and conflicts with it).
if ! command -v npm >/dev/null 2>&1; then
	apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
echo "install-deps.sh: done"
