#!/usr/bin/env bash
# Creates the two virtual environments the kit is developed and tested in:
#   .venv       host: torch, litert-torch, ai-edge-litert and the device set
#   .venv-tflrt the tflite-runtime 2.14 + numpy<2 environment every bundle must also run in
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r requirements-host.txt
[ -x .venv-tflrt/bin/python ] || "$PYTHON" -m venv .venv-tflrt
.venv-tflrt/bin/pip install -q --disable-pip-version-check -r requirements-tflite-runtime.txt
echo "setup done: .venv (host) and .venv-tflrt (tflite-runtime 2.14)"
