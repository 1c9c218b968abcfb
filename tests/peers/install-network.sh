#!/usr/bin/env bash
#! Installs the real peers the network-automation plugin is tested against,
#! and the demo's network devices: Debian's snmpd/snmp and OpenSSH, and
#! PyPI's ansible-core + ansible-runner. Idempotent and non-interactive; run
#! as root. `--check` only reports what is missing (see lib.sh).
#!
#! The tests and the demo start their own snmpd and sshd on free 127.0.0.1
#! ports with their own configs; nothing uses a system instance, and the
#! packages' maintainer scripts are not allowed to start one.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

# No OpenSSL: snmp2 uses its pure-Rust crypto and russh uses ring.
debs=(snmpd snmp openssh-server openssh-client python3)

mapfile -t missing < <(missing_debs "${debs[@]}")
python_ok() { python3 -c 'import ansible_runner, ansible' 2>/dev/null; }
if ! python_ok; then
    missing+=("ansible-core+ansible-runner(PyPI)")
fi
check_report "${missing[@]}"

mapfile -t debs_missing < <(missing_debs "${debs[@]}")
if ((${#debs_missing[@]})); then
    echo "install-network: installing ${debs_missing[*]} (Debian)"
    apt_install "${debs_missing[@]}"
fi

# sshd refuses to start without its privilege-separation directory.
mkdir -p /run/sshd 2>/dev/null || true

if ! python_ok; then
    echo "install-network: installing ansible-core and ansible-runner (PyPI)"
    pip_install ansible-core ansible-runner
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
