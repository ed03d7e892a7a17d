#!/bin/sh
# Reload (live and restart-only options, per_host) and claims at start.
exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e_reload.py"
