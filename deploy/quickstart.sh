#!/usr/bin/env bash
# Fresh Debian 12, as root: install dependencies, build, install natx and start natxd on its
# embedded defaults (no configuration file). natxd starts and supervises natx-engine, which
# forwards a demo port: 127.0.0.1:8080 -> natxd's own HTTP API on 127.0.0.1:3001, so
#   curl http://127.0.0.1:8080/api/health
# answers through the data plane. Stop with Ctrl-C (natxd drains and stops the engine).
# NATX_QUICKSTART_NO_RUN=1 installs without starting.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
cmake --install build >/dev/null
echo "quickstart: installed natxd, natxctl, natx-engine under /usr/local/bin"
if [ "${NATX_QUICKSTART_NO_RUN:-0}" = 1 ]; then
	exit 0
fi
echo "quickstart: starting natxd (control socket /run/natx/ctl.sock, HTTP 127.0.0.1:3001,"
echo "            demo forward tcp 127.0.0.1:8080 -> 127.0.0.1:3001); try: natxctl status"
exec /usr/local/bin/natxd --forward tcp:127.0.0.1:8080=127.0.0.1:3001
