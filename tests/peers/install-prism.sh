#!/usr/bin/env bash
# Installs the Twilio peer: Stoplight Prism and Twilio's OpenAPI description (npm), into target/peers/prism.
# Idempotent: does nothing when both packages are already there.
# Used by `.ci/run` and by `testkit::prism::Prism`, which reads the same paths.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
prefix="${PLUGKIT_PEERS_DIR:-$root/target/peers}/prism"
prism_bin="$prefix/node_modules/.bin/prism"
spec="$prefix/node_modules/@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json"

if [[ -x "$prism_bin" && -f "$spec" ]]; then
    echo "prism: already installed in $prefix"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "prism: npm is missing; install Node.js 18+ and npm first (Debian: apt-get install -y nodejs npm)" >&2
    exit 1
fi

mkdir -p "$prefix"
install() {
    npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
        @stoplight/prism-cli@5 @twilio-alpha/mcp@0.7.0
}
# A half-finished earlier install (an interrupted run) makes npm fail with
# ENOTEMPTY; start over from an empty prefix once.
if ! install; then
    echo "prism: npm install failed; retrying from an empty $prefix" >&2
    rm -rf "$prefix/node_modules" "$prefix/package-lock.json"
    install
fi

if [[ ! -x "$prism_bin" || ! -f "$spec" ]]; then
    echo "prism: install finished but $prism_bin or $spec is missing" >&2
    exit 1
fi
echo "prism: installed in $prefix"
