#!/usr/bin/env bash
#! Installs the Twilio peer: Stoplight Prism and Twilio's OpenAPI description
#! (npm), into `<cargo target directory>/peers/prism`, or
#! `$PLUGKIT_PEERS_DIR/prism`. Needs npm (install-node.sh), not root.
#! Idempotent: does nothing when both packages are already there. `--check`
#! only reports what is missing (see lib.sh).
#! Used by `cargo xtask test` and by `testkit::prism::Prism`, which read the same paths.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$here/lib.sh"

root="$(cd "$here/../.." && pwd)"
prefix="${PLUGKIT_PEERS_DIR:-$(target_dir "$root")/peers}/prism"
prism_bin="$prefix/node_modules/.bin/prism"
spec="$prefix/node_modules/@twilio-alpha/mcp/twilio-oai/spec/json/twilio_api_v2010.json"

missing=()
[[ -x "$prism_bin" && -f "$spec" ]] || missing+=("prism(npm, into $prefix)")
check_report "${missing[@]}"

if [[ -x "$prism_bin" && -f "$spec" ]]; then
    echo "prism: already installed in $prefix"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "prism: npm is missing; run: sudo bash tests/peers/install-node.sh" >&2
    exit 1
fi

echo "prism: installing @stoplight/prism-cli and @twilio-alpha/mcp (npm) into $prefix"
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
