#!/bin/sh
# End-to-end conformance suite against fetchd's threads engine.
FETCHD_MODEL=threads exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e.py"
