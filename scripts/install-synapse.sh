#!/usr/bin/env bash
# Installs Synapse, Matrix's reference homeserver, from PyPI into a virtualenv that the Matrix
# gateway's interop test starts throwaway servers from. Skips the install when that version is
# there already. PUSHGATE_SYNAPSE names another virtualenv.
set -euo pipefail

version="1.163.2"
venv="${PUSHGATE_SYNAPSE:-/opt/pushgate-test/synapse}"

if [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import synapse, sys; sys.exit(synapse.__version__ != '$version')" 2>/dev/null; then
    echo "synapse: $version installed in $venv"
    exit 0
fi

echo "synapse: installing matrix-synapse $version into $venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "matrix-synapse==$version"
"$venv/bin/python" -c "import synapse; print('synapse: installed', synapse.__version__)"
