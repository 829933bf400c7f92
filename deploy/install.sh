#!/usr/bin/env bash
# SpottyPottySense hub installer for Raspberry Pi OS Bookworm / Debian 12 (arm64, armhf).
#
#   sudo deploy/install.sh                    install, or upgrade in place (re-runnable)
#   sudo deploy/install.sh uninstall          remove the program; keep config, data, accounts
#   sudo deploy/install.sh uninstall --purge  remove those too
#   deploy/install.sh --root DIR [...]        write every file under DIR instead of /, run
#                                             nothing on the system (apt, useradd, chown,
#                                             systemctl, pip): print it as "would run: ..."
#
# What it sets up (each step only when something is missing or changed, so a second run
# changes nothing):
#   - Debian packages: python3-venv, mosquitto, mosquitto-clients, bluez, python3-systemd
#   - the `spottypotty` system user, in group `bluetooth` (BlueZ's D-Bus policy)
#   - /opt/spottypotty/venv with this checkout pip-installed; /usr/local/bin/spottypotty
#   - /etc/spottypotty/hub.toml from deploy/hub.example.toml, only if absent (root:spottypotty
#     0640); /etc/spottypotty/mqtt-password, the hub's broker password (spottypotty, 0600)
#   - /var/lib/spottypotty (spottypotty, 0750): the database and the Spotify token
#   - mosquitto: /etc/mosquitto/conf.d/spottypotty.conf, /etc/mosquitto/spottypotty/{acl,passwd}
#     (edited copies are kept; the shipped version is written beside them as *.new)
#   - every systemd/*.service and *.timer into /etc/systemd/system, enabled
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICE_USER=spottypotty
HUB_ACCOUNT=spottypotty-hub
HA_ACCOUNT=ha # Home Assistant's broker account (hub.registry.HA_USERNAME)
APT_PACKAGES=(python3 python3-venv mosquitto mosquitto-clients bluez python3-systemd)
PREFIX=/opt/spottypotty
VENV=$PREFIX/venv
SHIPPED=$PREFIX/shipped # checksums of the conffiles as installed, to tell edits apart
CONFIG_DIR=/etc/spottypotty
STATE_DIR=/var/lib/spottypotty
MOSQUITTO_DIR=/etc/mosquitto/spottypotty
MOSQUITTO_CONF=/etc/mosquitto/conf.d/spottypotty.conf
UNIT_DIR=/etc/systemd/system
BIN_LINK=/usr/local/bin/spottypotty

ROOT=""
ACTION=install
PURGE=0
CHANGES=0
WROTE=0
MOSQUITTO_CHANGED=0
UNITS_CHANGED=0

usage() {
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

say() { printf '==> %s\n' "$*"; }

while (($#)); do
    case $1 in
        --root)
            (($# >= 2)) || die "--root needs a directory"
            ROOT=$2
            shift 2
            ;;
        --root=*)
            ROOT=${1#--root=}
            shift
            ;;
        --purge)
            PURGE=1
            shift
            ;;
        install | uninstall)
            ACTION=$1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

if [[ -n $ROOT ]]; then
    mkdir -p "$ROOT"
    ROOT=$(cd "$ROOT" && pwd)
    [[ $ROOT != / ]] || die "--root / is the real system: leave --root out"
elif [[ $(id -u) -ne 0 ]]; then
    die "run as root (sudo $0 ...), or try it out with --root DIR"
fi
((PURGE == 0)) || [[ $ACTION == uninstall ]] || die "--purge goes with uninstall"

# --- helpers ----------------------------------------------------------------------------------

# A path on the target system.
at() { printf '%s%s' "$ROOT" "$1"; }

# Run a command that changes the system; with --root, only say it.
run() {
    if [[ -n $ROOT ]]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

changed() {
    CHANGES=$((CHANGES + 1))
    say "$*"
}

# own OWNER:GROUP PATH: chown, unless it already is (or under --root: say it).
own() {
    local want=$1 path
    path=$(at "$2")
    if [[ -n $ROOT ]]; then
        echo "would run: chown $want $2"
    elif [[ $(stat -c %U:%G "$path") != "$want" ]]; then
        chown "$want" "$path"
        changed "owner of $2 set to $want"
    fi
}

# dir PATH MODE OWNER:GROUP
dir() {
    local path
    path=$(at "$1")
    if [[ ! -d $path ]]; then
        mkdir -p "$path"
        changed "created $1"
    fi
    if [[ $(stat -c %a "$path") != "${2#0}" ]]; then
        chmod "$2" "$path"
        changed "mode of $1 set to $2"
    fi
    own "$3" "$1"
}

# file SOURCE PATH MODE OWNER:GROUP: install when absent or different (ours to replace).
# Sets WROTE=1 when PATH's content changed, else 0. (Never call these helpers in an
# `&&`/`||` list: bash ignores `set -e` inside them there.)
file() {
    local path
    WROTE=0
    path=$(at "$2")
    if ! cmp -s "$1" "$path"; then
        install -m "$3" "$1" "$path.tmp.$$"
        mv -f "$path.tmp.$$" "$path"
        changed "installed $2"
        WROTE=1
    elif [[ $(stat -c %a "$path") != "${3#0}" ]]; then
        chmod "$3" "$path"
        changed "mode of $2 set to $3"
    fi
    own "$4" "$2"
}

# conffile SOURCE PATH MODE OWNER:GROUP: like `file`, but a copy the admin edited is kept
# and the shipped version goes beside it as PATH.new. Sets WROTE like `file`.
conffile() {
    local source=$1 path=$2 name sum_file shipped_sum current_sum
    WROTE=0
    name=$(basename "$path")
    sum_file=$(at "$SHIPPED/$name.sha256")
    shipped_sum=$(sha256sum <"$source" | cut -d' ' -f1)
    if [[ -e $(at "$path") ]]; then
        current_sum=$(sha256sum <"$(at "$path")" | cut -d' ' -f1)
        if [[ $current_sum != "$shipped_sum" && $current_sum != "$(cat "$sum_file" 2>/dev/null)" ]]; then
            if ! cmp -s "$source" "$(at "$path").new"; then
                install -m "$3" "$source" "$(at "$path").new"
                changed "kept your edited $path; the shipped version is $path.new"
            fi
            return 0
        fi
    fi
    file "$source" "$path" "$3" "$4"
    if [[ $(cat "$sum_file" 2>/dev/null) != "$shipped_sum" ]]; then
        echo "$shipped_sum" >"$sum_file"
    fi
}

has_install_section() { grep -q '^\[Install\]' "$1"; }

# --- install ----------------------------------------------------------------------------------

check_system() {
    local arch
    arch=$(dpkg --print-architecture 2>/dev/null || echo unknown)
    case $arch in
        arm64 | armhf | amd64) ;;
        *) echo "warning: untested architecture $arch (made for arm64, armhf)" >&2 ;;
    esac
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "Python >= 3.11 is needed (Debian 12 / Bookworm ship 3.11)"
}

install_packages() {
    local missing=() package
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if [[ -n $ROOT ]]; then
        echo "would run: apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}"
    elif ((${#missing[@]})); then
        say "installing Debian packages: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
        CHANGES=$((CHANGES + 1))
    fi
}

create_user() {
    if [[ -n $ROOT ]]; then
        echo "would run: useradd --system --user-group --home-dir $STATE_DIR --no-create-home" \
            "--shell /usr/sbin/nologin $SERVICE_USER"
        echo "would run: usermod --append --groups bluetooth $SERVICE_USER"
        return
    fi
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "SpottyPottySense hub" "$SERVICE_USER"
        changed "created the system user $SERVICE_USER"
    fi
    if getent group bluetooth >/dev/null && ! id -nG "$SERVICE_USER" | grep -qw bluetooth; then
        usermod --append --groups bluetooth "$SERVICE_USER"
        changed "added $SERVICE_USER to group bluetooth"
    fi
}

install_program() {
    dir "$PREFIX" 0755 root:root
    dir "$SHIPPED" 0755 root:root
    if [[ -n $ROOT ]]; then
        echo "would run: python3 -m venv --system-site-packages $VENV"
        echo "would run: $VENV/bin/pip install --upgrade $SRC"
    else
        if [[ ! -x $VENV/bin/python ]]; then
            # System site packages: Debian's python3-systemd (journald, sd_notify) shows through.
            python3 -m venv --system-site-packages "$VENV"
            changed "created $VENV"
        fi
        say "installing the hub from $SRC into $VENV"
        "$VENV/bin/pip" install --quiet --upgrade pip
        "$VENV/bin/pip" install --quiet --upgrade "$SRC"
        # Same version number, new code (an upgrade from a newer checkout): replace it.
        "$VENV/bin/pip" install --quiet --no-deps --force-reinstall "$SRC"
    fi
    if [[ $(readlink "$(at "$BIN_LINK")" 2>/dev/null) != "$VENV/bin/spottypotty" ]]; then
        mkdir -p "$(dirname "$(at "$BIN_LINK")")"
        ln -sfn "$VENV/bin/spottypotty" "$(at "$BIN_LINK")"
        changed "linked $BIN_LINK"
    fi
}

# The example config with the hub's broker account filled in and the example sensor
# commented out (`spottypotty sensors add` appends real ones).
initial_config() {
    awk -v account="$HUB_ACCOUNT" -v secret="$CONFIG_DIR/mqtt-password" '
        /^\[\[sensors\]\]/ && !seen {
            seen = 1
            print "# Sensors: `spottypotty sensors add ID --location NAME --user USER` appends"
            print "# one [[sensors]] table each. An example, with every key:"
        }
        seen { print ($0 == "" || $0 ~ /^#/) ? $0 : "# " $0; next }
        /^username = ""/ { sub(/^username = ""/, "username = \"" account "\"") }
        /^password_file = ""/ { sub(/^password_file = ""/, "password_file = \"" secret "\"") }
        { print }
    ' "$SRC/deploy/hub.example.toml"
}

install_config() {
    dir "$CONFIG_DIR" 0750 "root:$SERVICE_USER"
    local config
    config=$(at "$CONFIG_DIR/hub.toml")
    if [[ -e $config ]]; then
        grep -q "^username = \"$HUB_ACCOUNT\"" "$config" || echo "note: $CONFIG_DIR/hub.toml" \
            "is yours and kept; for the secured broker set [mqtt] username = \"$HUB_ACCOUNT\"" \
            "and password_file = \"$CONFIG_DIR/mqtt-password\"" >&2
    else
        initial_config >"$config.tmp.$$"
        chmod 0640 "$config.tmp.$$"
        mv "$config.tmp.$$" "$config"
        changed "created $CONFIG_DIR/hub.toml (edit it: timezone, Spotify client_id)"
    fi
    own "root:$SERVICE_USER" "$CONFIG_DIR/hub.toml"
    dir "$STATE_DIR" 0750 "$SERVICE_USER:$SERVICE_USER"
}

# broker_account NAME FILE OWNER PASSWD: a broker account whose password lives only in
# FILE (made once, 0600, OWNER), hashed into mosquitto's PASSWD.
broker_account() {
    local name=$1 file=$2 owner=$3 passwd=$4 secret
    secret=$(at "$file")
    if [[ ! -s $secret ]]; then
        (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$secret")
        sed -i "/^$name:/d" "$passwd"
        changed "made a broker password for $name in $file"
    fi
    chmod 0600 "$secret"
    own "$owner" "$file"
    if ! grep -q "^$name:" "$passwd"; then
        # Hashed by hub.registry, with the password on stdin: never on a command line.
        PYTHONPATH=$SRC python3 -m hub.registry passwd "$passwd" "$name" <"$secret"
        MOSQUITTO_CHANGED=1
        changed "added the broker account $name"
    fi
}

install_mosquitto() {
    dir "$MOSQUITTO_DIR" 0750 mosquitto:mosquitto
    dir /etc/mosquitto/conf.d 0755 root:root
    conffile "$SRC/deploy/mosquitto/spottypotty.conf" "$MOSQUITTO_CONF" 0644 root:root
    MOSQUITTO_CHANGED=$((MOSQUITTO_CHANGED | WROTE))
    conffile "$SRC/deploy/mosquitto/acl" "$MOSQUITTO_DIR/acl" 0640 mosquitto:mosquitto
    MOSQUITTO_CHANGED=$((MOSQUITTO_CHANGED | WROTE))
    local passwd
    passwd=$(at "$MOSQUITTO_DIR/passwd")
    if [[ ! -e $passwd ]]; then
        (umask 077 && : >"$passwd")
        changed "created $MOSQUITTO_DIR/passwd"
    fi
    own mosquitto:mosquitto "$MOSQUITTO_DIR/passwd"

    # The hub's own broker account; its password lives only in this file, for the hub.
    broker_account "$HUB_ACCOUNT" "$CONFIG_DIR/mqtt-password" "$SERVICE_USER:$SERVICE_USER" "$passwd"
    # Home Assistant's: a person pastes this password into HA's MQTT setup (next_steps).
    broker_account "$HA_ACCOUNT" "$CONFIG_DIR/ha-mqtt-password" root:root "$passwd"
    if [[ -z $ROOT ]]; then
        local other
        other=$(grep -lE '^\s*(listener\s+1883|allow_anonymous\s+true|password_file)' \
            /etc/mosquitto/conf.d/*.conf /etc/mosquitto/mosquitto.conf 2>/dev/null \
            | grep -v "^$MOSQUITTO_CONF\$" || true)
        [[ -z $other ]] || echo "warning: also configuring the broker's listener or accounts:" \
            "$other; remove those lines or mosquitto may not start" >&2
    fi
    if ((MOSQUITTO_CHANGED)); then
        run systemctl restart mosquitto.service
    fi
}

install_units() {
    local unit name enable=()
    dir "$UNIT_DIR" 0755 root:root
    shopt -s nullglob
    for unit in "$SRC"/systemd/*.service "$SRC"/systemd/*.timer; do
        name=$(basename "$unit")
        file "$unit" "$UNIT_DIR/$name" 0644 root:root
        UNITS_CHANGED=$((UNITS_CHANGED | WROTE))
        if has_install_section "$unit"; then
            enable+=("$name")
        fi
    done
    shopt -u nullglob
    if ((UNITS_CHANGED)); then
        run systemctl daemon-reload
    fi
    if ((${#enable[@]})); then
        if [[ -n $ROOT ]]; then
            echo "would run: systemctl enable ${enable[*]}"
        else
            local unit_name
            for unit_name in "${enable[@]}"; do
                if ! systemctl is-enabled --quiet "$unit_name" 2>/dev/null; then
                    systemctl enable --quiet "$unit_name"
                    changed "enabled $unit_name"
                fi
            done
        fi
    fi
    # An upgrade: a running hub restarts on the new code; a stopped one stays stopped.
    run systemctl try-restart spottypotty-hub.service
}

next_steps() {
    cat <<EOF

SpottyPottySense hub installed ($CHANGES change(s)${ROOT:+ under $ROOT}). Next:
  1. Edit $CONFIG_DIR/hub.toml: [hub] timezone, [spotify] client_id; then
       sudo spottypotty check-config
  2. Give the hub your Spotify app's client secret as a systemd credential:
       sudo install -m 600 /dev/stdin $CONFIG_DIR/spotify-client-secret   # paste, Ctrl-D
       sudo systemctl edit spottypotty-hub   # add under [Service]:
         LoadCredential=spotify_client_secret:$CONFIG_DIR/spotify-client-secret
  3. Log in to Spotify once (prints a URL; paste the redirect URL back):
       sudo -u $SERVICE_USER SPOTIFY_CLIENT_SECRET=... spottypotty spotify login
  4. Register each sensor (prints its firmware config.json once):
       sudo spottypotty sensors add bathroom_main --location "Main bathroom" --user you
  5. Start the hub and watch it:
       sudo systemctl start spottypotty-hub && journalctl -fu spottypotty-hub
  6. Home Assistant (optional): add its MQTT integration with this broker, user "$HA_ACCOUNT",
     and the password from: sudo cat $CONFIG_DIR/ha-mqtt-password
Upgrade: pull the new checkout and run this script again. Local changes to the units go in
drop-ins (systemctl edit), which upgrades keep.
EOF
}

do_install() {
    check_system
    install_packages
    create_user
    install_program
    install_config
    install_mosquitto
    install_units
    next_steps
}

# --- uninstall --------------------------------------------------------------------------------

remove() {
    local path
    path=$(at "$1")
    if [[ -e $path || -L $path ]]; then
        rm -rf -- "$path"
        changed "removed $1"
    fi
}

do_uninstall() {
    local unit name
    shopt -s nullglob
    for unit in "$(at "$UNIT_DIR")"/spottypotty-*.service "$(at "$UNIT_DIR")"/spottypotty-*.timer; do
        name=$(basename "$unit")
        if [[ -n $ROOT ]]; then
            echo "would run: systemctl disable --now $name"
        else
            systemctl disable --now --quiet "$name" 2>/dev/null || true
        fi
        remove "$UNIT_DIR/$name"
    done
    shopt -u nullglob
    run systemctl daemon-reload
    remove "$MOSQUITTO_CONF"
    remove "$MOSQUITTO_CONF.new"
    run systemctl try-restart mosquitto.service
    remove "$BIN_LINK"
    remove "$PREFIX"
    if ((PURGE)); then
        remove "$CONFIG_DIR"
        remove "$STATE_DIR"
        remove "$MOSQUITTO_DIR"
        if [[ -n $ROOT ]]; then
            echo "would run: userdel $SERVICE_USER"
        elif getent passwd "$SERVICE_USER" >/dev/null; then
            userdel "$SERVICE_USER"
            changed "removed the user $SERVICE_USER"
        fi
        echo "Purged: config, database, Spotify token and broker accounts are gone."
    else
        echo "Kept: $CONFIG_DIR (config, secrets), $STATE_DIR (database, Spotify token)," \
            "$MOSQUITTO_DIR (broker accounts) and the user $SERVICE_USER." \
            "Remove them with: $0 uninstall --purge"
    fi
    echo "Debian packages (mosquitto, bluez, ...) are left installed."
}

if [[ $ACTION == install ]]; then
    do_install
else
    do_uninstall
fi
