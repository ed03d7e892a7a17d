#!/bin/sh
# The event engine at scale: 10,000 URLs at 1,000 concurrent transfers, the
# daemon's peak RSS under 64 MiB (exit 77, skipped, without the descriptors).
exec "${PYTHON3:-python3}" "${TESTS_SRCDIR:-$(dirname "$0")}/e2e_scale.py"
