#!/usr/bin/env bash
# Installs Home Assistant into .venv-ha for the tests that run the hub against a real
# Home Assistant (tests/integration/test_home_assistant.py). Idempotent: a second run with
# the same pins does nothing, so a local checkout keeps its venv between runs.
#
# 2024.3.3 is the newest release that runs on Python 3.11 (Debian 12's). Started with
# `hass --skip-pip` it installs nothing itself, so the requirements of the integrations it
# always loads are installed here, at the versions its own package_constraints.txt pins:
# without the frontend it falls into recovery mode and never loads MQTT, and josepy 2.x
# breaks acme (every HTTP request then answers 500).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv-ha
HA_VERSION=2024.3.3
EXTRAS=(josepy==1.14.0 home-assistant-frontend==20240307.0 paho-mqtt==1.6.1
    Pillow==10.2.0 SQLAlchemy==2.0.27 fnv-hash-fast==0.5.0 numpy==1.26.0
    PyTurboJPEG==1.7.1 securetar==2024.2.1 psutil-home-assistant==0.0.1 janus==1.0.0
    aiohttp_cors==0.7.0 aiohttp-fast-url-dispatcher==0.3.0 aiohttp-zlib-ng==0.3.1)
STAMP="$VENV/.installed"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

want="homeassistant==$HA_VERSION ${EXTRAS[*]}"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/hass" ]; then
    exit 0
fi

say "installing Home Assistant $HA_VERSION into $VENV (a few minutes)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "homeassistant==$HA_VERSION" "${EXTRAS[@]}"
printf '%s\n' "$want" >"$STAMP"
say "ready: $VENV/bin/hass"
