#!/usr/bin/env bash
#! Installs Debian's chromium and chromedriver for the isp-daemon admin page
#! test (a real headless browser driven over the W3C WebDriver protocol).
#! Idempotent and non-interactive; run as root (CI and developer machines are).
set -euo pipefail

debs=(chromium chromium-driver)

missing=()
for pkg in "${debs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    echo "install-chromium: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Report where everything is, so a failing test's "not found" is easy to trace.
for tool in chromium chromedriver; do
    command -v "$tool" >/dev/null || { echo "install-chromium: $tool missing after install" >&2; exit 1; }
done
echo "install-chromium: $(chromium --version 2>/dev/null || echo chromium), $(chromedriver --version 2>/dev/null | head -n1)"
echo "install-chromium: ok"
