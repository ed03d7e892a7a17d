#!/bin/sh
# End-to-end conformance suite against fetchd's event engine.
FETCHD_MODEL=event exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e.py"
