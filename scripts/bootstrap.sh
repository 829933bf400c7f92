#!/usr/bin/env bash
# Sets up everything `make demo`, `make test` and `make bench` need, on a fresh
# Debian 12 / Raspberry Pi OS Bookworm machine: Debian packages (installed when run
# as root, otherwise the exact command is printed) and the project's venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
# python3-venv/-dev, gcc, pkg-config and libsystemd-dev build systemd-python;
# mosquitto is the real broker the integration tests start on a free port;
# chromium and its driver render the dashboard in the browser tests.
APT_PACKAGES=(python3 python3-venv python3-dev gcc pkg-config libsystemd-dev mosquitto
    chromium chromium-driver)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python >= 3.11 is needed ($PYTHON is $("$PYTHON" --version 2>&1 || echo missing))." >&2
    echo "       Debian 12 / Raspberry Pi OS Bookworm ship 3.11: sudo apt-get install python3" >&2
    exit 1
fi

if command -v dpkg-query >/dev/null; then
    missing=()
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if ((${#missing[@]})); then
        if [ "$(id -u)" -eq 0 ]; then
            say "installing Debian packages: ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            echo "error: missing Debian packages. Install them, then run make again:" >&2
            echo "    sudo apt-get install -y ${missing[*]}" >&2
            exit 1
        fi
    fi
else
    echo "note: not a Debian system; make sure ${APT_PACKAGES[*]} (or equivalents) are installed" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
say "installing the hub and its test tools into $VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if ! "$VENV/bin/python" -m pip install -q -e '.[dev,systemd]'; then
    # systemd-python is optional: without it the hub speaks sd_notify itself.
    echo "warning: systemd-python did not build; continuing without it" >&2
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
fi
# ESPHome validates firmware/esphome/motion-sensor.yaml offline (tests/firmware); it pins
# paho-mqtt 1.x and an older bleak, so it gets a venv of its own.
if [ ! -x .venv-esphome/bin/esphome ]; then
    say "installing ESPHome into .venv-esphome (for esphome config in the tests)"
    "$PYTHON" -m venv .venv-esphome
    .venv-esphome/bin/python -m pip install -q --upgrade pip
    .venv-esphome/bin/python -m pip install -q esphome
fi
# dynalite (a DynamoDB-compatible server) for the cloud-sync tests and benchmarks.
bash scripts/install-dynalite.sh
# Home Assistant in .venv-ha, for the tests that run the hub against a real one.
bash scripts/install-home-assistant.sh
say "ready: $VENV"
