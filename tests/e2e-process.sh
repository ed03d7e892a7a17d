#!/bin/sh
# End-to-end conformance suite against fetchd's process engine.
FETCHD_MODEL=process exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e.py"
