#!/bin/sh
# End-to-end checks of the guarantees no other suite would notice breaking:
# retries counted, signals, cancel and pause, the hand-off's fsyncs.
FETCHD_MODEL=event exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e_guarantees.py"
