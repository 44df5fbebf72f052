#!/bin/sh
# The one install command on every board: sh device/install.sh [--dry-run] [--report FILE]
# Picks this board's requirement set, makes .venv beside device/ and installs it (device/install.py).
PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "install: $PYTHON not found: install Python 3 first (sudo apt install python3 python3-venv)" >&2
    exit 2
fi
exec "$PYTHON" "$(dirname "$0")/install.py" "$@"
