#!/usr/bin/env bash
# Installs what pushgate's full test suite needs and is missing: Prosody (+ prosody-modules),
# ejabberd, PostgreSQL and MariaDB, and Prometheus (for `promtool check metrics`), from Debian's
# packages, then Synapse from PyPI (install-synapse.sh). Skips apt entirely when all are
# present. No service is started by the packages (policy-rc.d answers 101 "not allowed");
# the tests start their own throwaway servers.
set -euo pipefail

packages=(prosody prosody-modules ejabberd postgresql mariadb-server prometheus)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ ${#missing[@]} -eq 0 ]; then
    echo "test dependencies: all installed (${packages[*]})"
    exec bash "$here/install-synapse.sh"
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "test dependencies missing: ${missing[*]}; run this script as root" >&2
    exit 1
fi

echo "test dependencies: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
had_policy=false
if [ -e "$policy" ]; then
    had_policy=true
    cp -p "$policy" "$policy.pushgate-saved"
fi
restore_policy() {
    if $had_policy; then mv -f "$policy.pushgate-saved" "$policy"; else rm -f "$policy"; fi
}
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod +x "$policy"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}"

bash "$here/install-synapse.sh"
