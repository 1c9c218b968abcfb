#!/usr/bin/env bash
#! Installs Debian's chromium and chromedriver for the isp-daemon admin page
#! test (a real headless browser driven over the W3C WebDriver protocol).
#! Idempotent and non-interactive; run as root. `--check` only reports what
#! is missing (see lib.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

debs=(chromium chromium-driver)

mapfile -t missing < <(missing_debs "${debs[@]}")
check_report "${missing[@]}"

if ((${#missing[@]})); then
    echo "install-chromium: installing ${missing[*]} (Debian)"
    apt_install "${missing[@]}"
fi

# Report where everything is, so a failing test's "not found" is easy to trace.
for tool in chromium chromedriver; do
    command -v "$tool" >/dev/null || { echo "install-chromium: $tool missing after install" >&2; exit 1; }
done
echo "install-chromium: $(chromium --version 2>/dev/null || echo chromium), $(chromedriver --version 2>/dev/null | head -n1)"
echo "install-chromium: ok"
