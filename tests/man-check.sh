#!/bin/sh
#
# man-check.sh: the manual pages are well-formed and fetchd.conf(5) is
# complete.
#
# 1. mandoc -T lint -W warning is silent on fetchd(8), fetchctl(1),
#    fetchd.conf(5) and fetchd-cluster(7).
# 2. Every option of etc/fetchd.conf (a "key = value" line, commented out
#    or not, under a [section] line) has an entry ".It Cm key" under
#    ".Ss [section]" in fetchd.conf(5), and every such entry is an option of
#    etc/fetchd.conf: adding, renaming or removing an option without the
#    manual fails here. The option table in src/config.c is the source and
#    the config unit test holds etc/fetchd.conf to it; this closes the loop.
# 3. Each entry gives the option's default as etc/fetchd.conf writes it (a
#    trailing "/VERSION" is not compared) and says when it takes effect as
#    etc/fetchd.conf does: "Needs a restart." for an option that
#    etc/fetchd.conf marks "# Needs a restart: ...", "Applies at reload"
#    for every other one. The config unit test holds those marks to the
#    option table's live/restart column.
#
# Exit 0 on success, 1 on failure, 77 when mandoc is not installed.

set -u
LC_ALL=C
export LC_ALL
# Field separator of the work files: not white space, so that an empty
# default stays a field of its own for read.
sep=$(printf '\001')

if [ -z "${TESTS_SRCDIR:-}" ]; then
	TESTS_SRCDIR=$(cd "$(dirname "$0")" && pwd)
fi
top=$TESTS_SRCDIR/..
man=$top/man
conf=$top/etc/fetchd.conf

if ! command -v mandoc >/dev/null 2>&1; then
	echo "SKIP: mandoc is not installed (apt-get install mandoc)"
	exit 77
fi

fail=0

for page in fetchd.8 fetchctl.1 fetchd.conf.5 fetchd-cluster.7; do
	if [ ! -f "$man/$page" ]; then
		echo "FAIL: $man/$page is missing"
		fail=1
		continue
	fi
	out=$(mandoc -T lint -W warning "$man/$page" 2>&1)
	rc=$?
	if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
		echo "FAIL: mandoc -T lint -W warning $page (status $rc):"
		printf '%s\n' "$out"
		fail=1
	else
		echo "ok: mandoc lint $page"
	fi
done

if [ ! -f "$conf" ]; then
	echo "FAIL: $conf is missing"
	exit 1
fi

tmp=$(mktemp -d /tmp/man-check.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# section.key SEP default SEP restart|live, from etc/fetchd.conf. Prose
# comments ("# The spool ...") have a blank after the '#' and never match
# an option; "# Needs a restart" marks the option that follows it.
awk '
/^[#;]?[ \t]*\[[A-Za-z0-9_]+\][ \t]*$/ {
	s = $0
	sub(/^[#;]?[ \t]*\[/, "", s)
	sub(/\].*$/, "", s)
	restart = 0
	next
}
/^# Needs a restart/ { restart = 1; next }
/^[#;]?[A-Za-z_][A-Za-z0-9_]*[ \t]*=/ {
	k = $0
	sub(/^[#;]?/, "", k)
	v = k
	sub(/[ \t]*=.*$/, "", k)
	sub(/^[^=]*=[ \t]*/, "", v)
	sub(/[ \t]+$/, "", v)
	if (s == "") {
		printf "%s: key %s outside of any [section]\n", FILENAME, k \
		    > "/dev/stderr"
		bad = 1
	}
	printf "%s.%s\001%s\001%s\n", s, k, v, restart ? "restart" : "live"
	restart = 0
}
END { exit bad }
' "$conf" > "$tmp/conf.raw" || fail=1
sort -t "$sep" -k1,1 "$tmp/conf.raw" > "$tmp/conf"

# section.key SEP entry text (one line), from fetchd.conf(5): the .It Cm
# entries of the lists under each ".Ss [section]", up to the next .It, .El,
# .Ss or .Sh at the same list depth.
awk '
function flush() {
	if (key != "") {
		gsub(/\001/, " ", text)
		printf "%s.%s\001%s\n", sect, key, text
	}
	key = ""
	text = ""
}
/^\.Sh/ { flush(); sect = ""; next }
/^\.Ss \[[A-Za-z0-9_]+\]$/ {
	flush()
	sect = $2
	gsub(/[][]/, "", sect)
	depth = 0
	next
}
/^\.Ss/ { flush(); sect = ""; next }
sect == "" { next }
/^\.Bl/ { depth++; if (depth > 1) text = text " " $0; next }
/^\.El/ {
	if (depth == 1)
		flush()
	else
		text = text " " $0
	depth--
	next
}
depth == 1 && /^\.It Cm [A-Za-z_]/ { flush(); key = $3; next }
key != "" { text = text " " $0 }
END { flush() }
' "$man/fetchd.conf.5" | sort -t "$sep" -k1,1 > "$tmp/man"

cut -d "$sep" -f1 "$tmp/conf" > "$tmp/conf.keys"
cut -d "$sep" -f1 "$tmp/man" > "$tmp/man.keys"

n=$(wc -l < "$tmp/conf.keys")
if [ "$n" -eq 0 ]; then
	echo "FAIL: found no options in $conf"
	fail=1
fi

for k in $(comm -23 "$tmp/conf.keys" "$tmp/man.keys"); do
	echo "FAIL: option $k of etc/fetchd.conf is not documented in fetchd.conf.5 (.It Cm under .Ss [section])"
	fail=1
done
for k in $(comm -13 "$tmp/conf.keys" "$tmp/man.keys"); do
	echo "FAIL: fetchd.conf.5 documents $k, which is not an option of etc/fetchd.conf"
	fail=1
done
dups=$(uniq -d "$tmp/conf.keys"; uniq -d "$tmp/man.keys")
if [ -n "$dups" ]; then
	echo "FAIL: options listed twice: $dups"
	fail=1
fi

# Defaults and when they take effect, option by option.
join -t "$sep" "$tmp/conf" "$tmp/man" > "$tmp/both"
while IFS="$sep" read -r k def when text; do
	want=$(printf '%s' "$def" | sed 's,/[0-9][0-9.]*$,/,')
	case $when:$text in
	restart:*"Applies at reload"*|live:*"Needs a restart"*)
		echo "FAIL: fetchd.conf.5: $k says both \"Applies at reload\" and \"Needs a restart\", or the wrong one"
		fail=1
		;;
	restart:*"Needs a restart."*|live:*"Applies at reload"*) ;;
	restart:*)
		echo "FAIL: fetchd.conf.5: $k needs a restart (etc/fetchd.conf) but does not say \"Needs a restart.\""
		fail=1
		;;
	*)
		echo "FAIL: fetchd.conf.5: $k applies at reload (etc/fetchd.conf) but does not say \"Applies at reload\""
		fail=1
		;;
	esac
	if [ -z "$want" ]; then
		case $text in
		*"the default"*) ;;
		*)
			echo "FAIL: fetchd.conf.5: $k does not say that its default is empty"
			fail=1
			;;
		esac
	else
		case $text in
		*"$want"*) ;;
		*)
			echo "FAIL: fetchd.conf.5: $k does not give its default \"$def\""
			fail=1
			;;
		esac
	fi
done < "$tmp/both"

if [ "$fail" -eq 0 ]; then
	echo "ok: fetchd.conf.5 documents all $n options of etc/fetchd.conf with their defaults"
fi
exit $fail
