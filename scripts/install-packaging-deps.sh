#!/usr/bin/env bash
# Installs what building and checking pushgate's Debian package needs and is missing:
# cargo-deb (from crates.io, pinned) and lintian (Debian's package). Skips each one that is
# already there, so a second run does nothing. lintian needs root to install (apt-get).
set -euo pipefail

cargo_deb_version=3.8.0

[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

installed_cargo_deb=$(cargo deb --version 2>/dev/null | awk '{print $NF}' || true)
if [ "$installed_cargo_deb" = "$cargo_deb_version" ]; then
    echo "packaging dependencies: cargo-deb $cargo_deb_version installed"
else
    echo "packaging dependencies: installing cargo-deb $cargo_deb_version"
    cargo install cargo-deb --version "=$cargo_deb_version" --locked
fi

if dpkg-query -W -f='${Status}' lintian 2>/dev/null | grep -q "install ok installed"; then
    echo "packaging dependencies: lintian installed"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "lintian missing; run this script as root (or: apt-get install lintian)" >&2
        exit 1
    fi
    echo "packaging dependencies: installing lintian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends lintian
fi
