#!/usr/bin/env bash
#! Installs the real peers the network-automation plugin is tested against:
#! Debian's snmpd/snmp and OpenSSH, and PyPI's ansible-core + ansible-runner.
#! Idempotent and non-interactive; run as root (CI and developer machines are).
#!
#! The tests start their own snmpd and sshd on free 127.0.0.1 ports with
#! their own configs; nothing uses a system instance. So that the packages'
#! maintainer scripts do not start one (snmpd on 161, sshd on 22), service
#! starts are refused with a temporary policy-rc.d while apt runs.
set -euo pipefail

# No OpenSSL: snmp2 uses its pure-Rust crypto and russh uses ring.
debs=(snmpd snmp openssh-server openssh-client)

missing=()
for pkg in "${debs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    echo "install-network: installing ${missing[*]}"
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        own_policy=1
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if ((own_policy)); then
        rm -f "$policy"
        trap - EXIT
    fi
fi

# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd

if ! python3 -c 'import ansible_runner, ansible' 2>/dev/null; then
    echo "install-network: installing ansible-core and ansible-runner from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check ansible-core ansible-runner
fi

# Report where everything is, so a failing test's "not found" is easy to trace.
for tool in snmpd snmpget /usr/sbin/sshd ssh ssh-keygen; do
    command -v "$tool" >/dev/null || { echo "install-network: $tool missing after install" >&2; exit 1; }
done
python3 - <<'PY'
import shutil, site, sys, os
dirs = [os.path.join(site.getuserbase(), "bin"), os.path.join(sys.prefix, "bin")]
for tool in ("ansible-runner", "ansible-playbook"):
    found = shutil.which(tool) or next((os.path.join(d, tool) for d in dirs if os.path.isfile(os.path.join(d, tool))), None)
    if not found:
        sys.exit(f"install-network: {tool} missing after pip install")
    print(f"install-network: {tool} at {found}")
PY
echo "install-network: ok"
