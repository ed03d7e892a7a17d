#!/bin/sh
# Live engine switches (threads, event, process) under load.
exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e_switch.py"
