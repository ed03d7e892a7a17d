#!/bin/bash
#
# completion-check.sh: the bash completion of fetchctl
# (etc/bash-completion/fetchctl) against the built fetchctl.
#
# A non-interactive bash without the bash-completion package's scripts
# sources the completion, sets COMP_WORDS and COMP_CWORD as readline would
# and calls the function "complete -p fetchctl" names, then compares
# COMPREPLY with what is expected:
#
# 1. A command prefix completes to the command ("st" -> stats), and an
#    empty word to every command fetchctl --help lists.
# 2. Options complete: the global ones, and a command's own (stats
#    --cluster) only after that command.
# 3. "cancel <TAB>" lists the jobs of a spool made here, named by a
#    configuration written here and given with -c (and -cFILE): the
#    entries of new/, active/, done/ and failed/, and neither .result,
#    .journal, .tmp nor dot files, nor tmp/; a prefix narrows them; a
#    second job name is not offered.
# 4. "submit <TAB>" and "-c <TAB>" complete file names; "--name <TAB>" and
#    "watch <TAB>" complete nothing.
# 5. A missing configuration, a directory given as one, a configuration
#    without spool_dir pointing nowhere, and no fetchctl in PATH complete
#    to nothing and write nothing on stderr.
# 6. The completion's built-in default spool directory is the default of
#    [daemon] spool_dir in src/config.c.
#
# The built fetchctl ($FETCHCTL, else ../src/fetchctl next to this build)
# is put first in PATH: the completion runs "fetchctl --help".
#
# Exit 0 on success, 1 on failure, 77 when bash is not installed.

if [ -z "${BASH_VERSION:-}" ]; then
	if ! command -v bash >/dev/null 2>&1; then
		echo "SKIP: bash is not installed"
		exit 77
	fi
	exec bash --norc --noprofile "$0" "$@"
fi

set -u
LC_ALL=C
export LC_ALL

if [ -z "${TESTS_SRCDIR:-}" ]; then
	TESTS_SRCDIR=$(cd "$(dirname "$0")" && pwd)
fi
top=$TESTS_SRCDIR/..
script=$top/etc/bash-completion/fetchctl
fetchctl=${FETCHCTL:-$(pwd)/../src/fetchctl}
if [ ! -x "$fetchctl" ]; then
	echo "FAIL: no fetchctl at $fetchctl (set FETCHCTL)"
	exit 1
fi
PATH=$(cd "$(dirname "$fetchctl")" && pwd):$PATH
export PATH

work=$(mktemp -d "${TMPDIR:-/tmp}/completion-check.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
failed=0

fail() {
	echo "FAIL: $*"
	failed=1
}

# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=etc/bash-completion/fetchctl
. "$script"
func=$(complete -p fetchctl 2>/dev/null | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
if [ -z "$func" ]; then
	echo "FAIL: $script registers no completion function for fetchctl"
	exit 1
fi

# complete WORD... : COMPREPLY for the last word, sorted, one per line, in
# $got; what the function wrote on stderr in $err.
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	"$func" fetchctl "${COMP_WORDS[COMP_CWORD]}" \
	    "${COMP_WORDS[COMP_CWORD - 1]}" 2>"$work/stderr"
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort)
	err=$(cat "$work/stderr")
}

# expect "WANTED" WORD... : the completions are exactly WANTED (one per
# line, sorted), and nothing was written on stderr.
expect() {
	local want=$1
	shift
	complete_words "$@"
	[ "$got" = "$want" ] ||
	    fail "${*@Q}: got [${got//$'\n'/ }], want [${want//$'\n'/ }]"
	[ -z "$err" ] || fail "${*@Q}: wrote on stderr: $err"
}

lines() {
	printf '%s\n' "$@" | sort
}

# --- 1. commands ---------------------------------------------------------

expect stats fetchctl st
expect "$(lines cancel)" fetchctl can
commands=$(fetchctl --help |
    sed -n '/^commands:/,/^[^ ]/s/^  \([a-z][a-z-]*\).*/\1/p' | sort -u)
[ -n "$commands" ] || fail "fetchctl --help lists no commands"
expect "$commands" fetchctl ""
expect "$commands" fetchctl --json ""

# --- 2. options ----------------------------------------------------------

complete_words fetchctl -
for o in -s -c --json --prometheus; do
	grep -qx -- "$o" <<<"$got" ||
	    fail "fetchctl -<TAB>: $o missing from [${got//$'\n'/ }]"
done
grep -qx -- --cluster <<<"$got" &&
    fail "fetchctl -<TAB>: --cluster offered before stats"
expect "$(lines --cluster)" fetchctl stats --cl
expect "$(lines --json)" fetchctl cancel --js
expect "$(lines --name)" fetchctl submit --na

# --- 3. job names from the spool -----------------------------------------

spool="$work/spool with blank"
for d in tmp new active 'done' failed; do
	mkdir -p "$spool/$d" || exit 1
done
touch "$spool/new/queued" "$spool/new/.hidden" "$spool/tmp/staged" \
    "$spool/active/running.1" "$spool/active/running.1.result" \
    "$spool/active/running.1.journal" \
    "$spool/done/fine" "$spool/done/fine.result" \
    "$spool/failed/broken" "$spool/failed/broken.result" \
    "$spool/failed/left.tmp" || exit 1
# Another section's spool_dir, comments and a quoted value with an inline
# comment, as config.c reads them.
cat > "$work/fetchd.conf" <<EOF
# spool_dir = /nowhere
[http]
spool_dir = /nowhere/http
[daemon]
; spool_dir = /nowhere/comment
  spool_dir = "$spool"   ; the test's spool
log_level = info
EOF
jobs=$(lines queued running.1 fine broken)
expect "$jobs" fetchctl -c "$work/fetchd.conf" cancel ""
expect "$jobs" fetchctl --json -c"$work/fetchd.conf" cancel ""
expect "$jobs" fetchctl cancel -c "$work/fetchd.conf" ""
expect "$(lines fine)" fetchctl -c "$work/fetchd.conf" cancel f
expect "$(lines running.1)" fetchctl -c "$work/fetchd.conf" cancel r
expect "" fetchctl -c "$work/fetchd.conf" cancel fine ""
expect "" fetchctl -c "$work/fetchd.conf" cancel zzz

# --- 4. files, and nothing where nothing fits ----------------------------

mkdir -p "$work/files/sub" &&
    touch "$work/files/urls.txt" "$work/files/urls2.txt"
expect "$(lines "$work/files/urls.txt" "$work/files/urls2.txt")" \
    fetchctl submit "$work/files/ur"
expect "$(lines "$work/files/sub")" fetchctl submit "$work/files/s"
expect "$(lines "$work/files/urls.txt" "$work/files/urls2.txt")" \
    fetchctl submit "$work/files/urls.txt" "$work/files/ur"
expect "$(lines "$work/fetchd.conf")" fetchctl -c "$work/fetchd"
expect "$(lines "$work/fetchd.conf")" fetchctl -s "$work/fetchd"
expect "" fetchctl submit --name ""
expect "" fetchctl -c "$work/fetchd.conf" watch ""

# --- 5. quietly nothing ---------------------------------------------------

expect "" fetchctl -c "$work/no-such.conf" cancel ""
expect "" fetchctl -c "$work" cancel ""
printf '[daemon]\nspool_dir = %s\n' "$work/no-such-spool" > "$work/nowhere.conf"
expect "" fetchctl -c "$work/nowhere.conf" cancel ""
printf '\001\377garbage [[[ = =\n' > "$work/garbage.conf"
expect "" fetchctl -c "$work/garbage.conf" cancel ""
mkdir -p "$work/bin" || exit 1
for t in sed sort cat; do
	ln -s "$(command -v $t)" "$work/bin/$t" || exit 1
done
(
	PATH=$work/bin
	expect "" fetchctl st
	expect "" fetchctl -c "$work/fetchd.conf" cancel ""
	exit $failed
) || failed=1

# --- 6. the default spool directory ---------------------------------------

want=$(sed -n '/"spool_dir", *CONF_STR/,/RESTART/p' "$top/src/config.c" |
    grep -o '"/[^"]*"' | head -n 1 | tr -d '"')
if [ -z "$want" ]; then
	fail "no default of spool_dir found in src/config.c"
elif [ "$_fetchctl_default_spool" != "$want" ]; then
	fail "the completion's default spool $_fetchctl_default_spool" \
	    "is not src/config.c's $want"
fi

[ "$failed" -eq 0 ] && echo "PASS: fetchctl completion"
exit "$failed"
