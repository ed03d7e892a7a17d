#!/bin/sh
# End-to-end tests of the control socket, the live stats and fetchctl.
exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e_control.py"
