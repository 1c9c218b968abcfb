#!/usr/bin/env bash
#! Shared by the install-*.sh scripts (sourced, never run): `--check` mode,
#! Debian package installs without starting services, and pip installs that
#! work on Debian's externally managed Python.
#!
#! Every install script accepts `--check`: it changes nothing, prints
#! `missing: <what>` and exits 1 when something is missing, exits 0 when
#! everything is there. `cargo xtask test` and `cargo xtask demo` use it to
#! decide, before building anything, what to install.

check_only=0
if [[ "${1:-}" == "--check" ]]; then
    check_only=1
fi

# Prints the Debian packages among "$@" that are not installed.
missing_debs() {
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            echo "$pkg"
        fi
    done
}

# In --check mode: reports "$@" (what is missing) and exits; otherwise returns.
check_report() {
    if ((check_only)); then
        if (($#)); then
            echo "missing: $*"
            exit 1
        fi
        exit 0
    fi
}

# Installs Debian packages non-interactively. Maintainer scripts may not
# start services (snmpd on 161, sshd on 22): tests start their own.
apt_install() {
    (($#)) || return 0
    if ((EUID != 0)); then
        echo "$(basename "$0"): installing the Debian packages $* needs root; run: sudo bash tests/peers/install-all.sh" >&2
        exit 1
    fi
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        own_policy=1
    fi
    local status=0
    apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || status=$?
    if ((own_policy)); then
        rm -f "$policy"
    fi
    return "$status"
}

# pip install "$@" into the Python that `python3` runs. Debian's system
# Python refuses global installs (PEP 668) unless told otherwise.
pip_install() {
    if ! python3 -m pip --version >/dev/null 2>&1; then
        echo "$(basename "$0"): installing python3-pip (Debian) for pip"
        apt_install python3-pip
    fi
    python3 -m pip install --quiet --disable-pip-version-check "$@" 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$@"
}

# The cargo target directory, asked of cargo (honours CARGO_TARGET_DIR and
# .cargo/config.toml); `<workspace>/target` only when cargo cannot be run.
target_dir() {
    local root="$1" dir=""
    if command -v "${CARGO:-cargo}" >/dev/null 2>&1; then
        dir="$(cd "$root" && "${CARGO:-cargo}" metadata --format-version 1 --no-deps 2>/dev/null |
            sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    fi
    echo "${dir:-$root/target}"
}
