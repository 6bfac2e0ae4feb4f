#!/usr/bin/env bash
# One-time (idempotent) setup: system fonts, a virtual environment, CPU torch, the package.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

# Fonts the synthesiser draws with: Hangul and CJK of many designs (Nanum with its pen, brush and
# eco faces, Noto CJK, Alee, Lexi, D2Coding, the Un extras), and Latin families of different
# designs (sans, serif, mono, rounded, hand-like), so models see many glyph shapes.
FONT_PACKAGES="fonts-nanum fonts-nanum-extra fonts-nanum-eco fonts-dejavu-core fonts-noto-cjk fonts-alee
  fonts-lexi-gulim fonts-lexi-saebom fonts-naver-d2coding fonts-unfonts-extra fonts-liberation2
  fonts-lato fonts-open-sans fonts-roboto-unhinted fonts-hack fonts-jetbrains-mono fonts-linuxlibertine
  fonts-go fonts-comic-neue fonts-cantarell fonts-crosextra-caladea fonts-dseg fontconfig"
if command -v dpkg-query >/dev/null; then
  missing=$(for p in $FONT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
  if [ -n "$missing" ]; then
    echo "[setup] installing system fonts:" $missing
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
else
  echo "[setup] not a Debian system: install these fonts (or their equivalents) yourself: $FONT_PACKAGES"
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
