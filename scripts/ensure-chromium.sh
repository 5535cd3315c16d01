#!/usr/bin/env bash
# Make sure Debian's headless Chromium, its driver and a CJK font are installed, for the
# dashboard's browser test (tests/integration/test_dashboard_browser.py). Idempotent: does
# nothing when they are there. Installs with apt-get (as root, or through passwordless sudo);
# otherwise it stops with a message that says what to install.
# CHROMIUM and CHROMEDRIVER override the paths (the test reads the same variables).
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
PACKAGES=(chromium chromium-driver fonts-wqy-microhei)

have_all() {
    [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ] && { ! command -v fc-list >/dev/null || fc-list :lang=zh | grep -q .; }
}

if have_all; then
    exit 0
fi

fail() {
    echo "ensure-chromium: $*" >&2
    echo "ensure-chromium: the dashboard's browser test needs: ${PACKAGES[*]} (Debian packages)," >&2
    echo "ensure-chromium: or set CHROMIUM and CHROMEDRIVER to a Chromium and its matching chromedriver." >&2
    exit 1
}

command -v apt-get >/dev/null || fail "$CHROMIUM or $CHROMEDRIVER is missing and there is no apt-get here."

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    fail "$CHROMIUM or $CHROMEDRIVER is missing and installing needs root: run \`sudo apt-get install ${PACKAGES[*]}\`."
fi

echo "ensure-chromium: installing ${PACKAGES[*]} with apt-get (once)"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq || fail "apt-get update failed (no network to the Debian mirror?)."
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null \
    || fail "apt-get install ${PACKAGES[*]} failed."

have_all || fail "installed ${PACKAGES[*]}, yet $CHROMIUM or $CHROMEDRIVER is still missing."
echo "ensure-chromium: $("$CHROMIUM" --version 2>/dev/null | head -1)"
