#!/usr/bin/env bash
# One-time (idempotent) setup: system fonts, a virtual environment, CPU torch, the package.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

fonts_missing() {
  for f in /usr/share/fonts/truetype/nanum /usr/share/fonts/truetype/dejavu /usr/share/fonts/opentype/noto; do
    [ -d "$f" ] || return 0
  done
  return 1
}
if fonts_missing; then
  echo "[setup] installing system fonts (fonts-nanum, fonts-dejavu-core, fonts-noto-cjk, fonts-liberation2)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    fonts-nanum fonts-dejavu-core fonts-noto-cjk fonts-liberation2 fontconfig >/dev/null
fi

# The web page's tests drive Debian's chromium (WITH_BROWSER=1, as `make test` sets).
if [ "${WITH_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null; then
  echo "[setup] installing chromium (for the web page's tests)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# The CPU wheel first: an unpinned torch would pull gigabytes of CUDA packages.
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "[setup] ready: $VENV ($("$VENV/bin/python" -c 'import torch, ray; print("torch", torch.__version__, "ray", ray.__version__)'))"
