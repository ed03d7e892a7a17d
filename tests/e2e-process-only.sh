#!/bin/sh
# End-to-end tests of what only the process engine does (worker children:
# replacement after a crash, no zombies or orphans, no inherited fds).
exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e_process.py"
