#!/bin/sh
#
# systemd-check.sh: the service unit, the sysusers.d and the tmpfiles.d
# files are valid and the unit's sandbox stays tight.
#
# 1. systemd-analyze verify prints nothing for systemd/fetchd.service.
#    verify insists that every Exec*= command exists and that every man:
#    page named in Documentation= is found, and it resolves the units the
#    service depends on. None of that can be taken from the build machine
#    (fetchd is not installed there, and should not need to be), so verify
#    runs with --root on a scratch tree: the system's own unit directory is
#    copied in, the unit goes to /etc/systemd/system, each Exec*= command
#    is an empty executable at its path, and MANPATH points at the pages in
#    man/. Both the file name passed to verify and the unit's paths are
#    then looked up inside that tree.
# 2. systemd-analyze security --offline=true rates the unit's exposure at
#    2.0 or lower ("Overall exposure level for fetchd.service: N.N ...").
# 2b. The one capability the unit keeps is CAP_LEASE (the spool's check
#    for a producer still writing a job in new/), bounding set and ambient.
# 3. systemd-sysusers creates the user and group fetchd from
#    fetchd.sysusers in a scratch root; as root, systemd-tmpfiles --create
#    then makes the directories of fetchd.tmpfiles there with the owners
#    and modes the spool protocol needs.
#
# Exit 0 on success, 1 on failure, 77 when systemd-analyze is missing.

set -u
LC_ALL=C
export LC_ALL

if [ -z "${TESTS_SRCDIR:-}" ]; then
	TESTS_SRCDIR=$(cd "$(dirname "$0")" && pwd)
fi
top=$TESTS_SRCDIR/..
unit=$top/systemd/fetchd.service
max_exposure=2.0

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze is not installed (apt-get install systemd)"
	exit 77
fi
for f in "$unit" "$top/systemd/fetchd.sysusers" "$top/systemd/fetchd.tmpfiles"; do
	if [ ! -f "$f" ]; then
		echo "FAIL: $f is missing"
		exit 1
	fi
done

tmp=$(mktemp -d /tmp/systemd-check.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
fail=0

# --- 1. verify ---------------------------------------------------------

sysunitdir=
for d in "$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null)" \
    /usr/lib/systemd/system /lib/systemd/system; do
	if [ -n "$d" ] && [ -f "$d/multi-user.target" ]; then
		sysunitdir=$d
		break
	fi
done
if [ -z "$sysunitdir" ]; then
	echo "FAIL: cannot find the system unit directory (multi-user.target)"
	exit 1
fi

root=$tmp/root
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd" "$tmp/man" || exit 1
cp -R "$sysunitdir" "$root/usr/lib/systemd/system" || exit 1
cp "$unit" "$root/etc/systemd/system/fetchd.service" || exit 1

# An empty executable for each command the unit runs ("-", "@", ":", "+",
# "!" are prefixes of the path, not part of it).
sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\([^ ]*\).*/\1/p' "$unit" | sort -u |
while read -r cmd; do
	case $cmd in
	/*) ;;
	*)
		echo "FAIL: $cmd: Exec commands must be absolute paths"
		exit 1
		;;
	esac
	mkdir -p "$root$(dirname "$cmd")" &&
	    printf '#!/bin/sh\nexit 0\n' > "$root$cmd" &&
	    chmod 755 "$root$cmd" || exit 1
done || fail=1

verify_man=no
if command -v man >/dev/null 2>&1; then
	verify_man=yes
	for page in "$top"/man/*.[1-8]; do
		sec=${page##*.}
		mkdir -p "$tmp/man/man$sec" && cp "$page" "$tmp/man/man$sec/" ||
		    exit 1
	done
fi

out=$(MANPATH=$tmp/man systemd-analyze verify --man=$verify_man \
    --root="$root" /etc/systemd/system/fetchd.service 2>&1)
rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
	echo "FAIL: systemd-analyze verify (status $rc):"
	printf '%s\n' "$out"
	fail=1
else
	echo "ok: systemd-analyze verify fetchd.service (man pages checked: $verify_man)"
fi

# --- 2. security -------------------------------------------------------

out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)
rc=$?
score=$(printf '%s\n' "$out" |
    sed -n 's/.*Overall exposure level for [^:]*: *\([0-9][0-9.]*\).*/\1/p')
if [ "$rc" -ne 0 ] || [ -z "$score" ]; then
	echo "FAIL: systemd-analyze security --offline=true (status $rc):"
	printf '%s\n' "$out"
	fail=1
elif awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
	echo "ok: systemd-analyze security: exposure $score (at most $max_exposure)"
else
	echo "FAIL: systemd-analyze security: exposure $score is above $max_exposure:"
	printf '%s\n' "$out" | grep -v '^ *[+✓] '
	fail=1
fi

# --- 2b. capabilities ----------------------------------------------------

caps=$(sed -n 's/^\(CapabilityBoundingSet\|AmbientCapabilities\)=/\1 /p' "$unit")
if [ "$caps" = "CapabilityBoundingSet CAP_LEASE
AmbientCapabilities CAP_LEASE" ]; then
	echo "ok: capabilities: CAP_LEASE only"
else
	echo "FAIL: the unit should keep CAP_LEASE alone (bounding set and ambient), got:"
	printf '%s\n' "$caps"
	fail=1
fi

# --- 3. sysusers and tmpfiles -----------------------------------------

if ! command -v systemd-sysusers >/dev/null 2>&1 ||
    ! command -v systemd-tmpfiles >/dev/null 2>&1; then
	echo "skip: systemd-sysusers or systemd-tmpfiles is not installed"
	exit $fail
fi

fs=$tmp/fs
mkdir -p "$fs/etc" "$fs/usr/lib/sysusers.d" "$fs/usr/lib/tmpfiles.d" ||
    exit 1
: > "$fs/etc/passwd"
: > "$fs/etc/group"
cp "$top/systemd/fetchd.sysusers" "$fs/usr/lib/sysusers.d/fetchd.conf" &&
    cp "$top/systemd/fetchd.tmpfiles" "$fs/usr/lib/tmpfiles.d/fetchd.conf" ||
    exit 1

out=$(systemd-sysusers --root="$fs" fetchd.conf 2>&1)
rc=$?
uid=$(awk -F: '$1 == "fetchd" { print $3 }' "$fs/etc/passwd")
gid=$(awk -F: '$1 == "fetchd" { print $3 }' "$fs/etc/group")
pgid=$(awk -F: '$1 == "fetchd" { print $4 }' "$fs/etc/passwd")
home=$(awk -F: '$1 == "fetchd" { print $6 }' "$fs/etc/passwd")
if [ "$rc" -ne 0 ] || [ -z "$uid" ] || [ -z "$gid" ] || [ "$pgid" != "$gid" ] ||
    [ "$home" != /var/lib/fetchd ] || [ "$uid" -ge 1000 ] || [ "$uid" -eq 0 ]; then
	echo "FAIL: systemd-sysusers fetchd.sysusers (status $rc): want a system user and group fetchd, home /var/lib/fetchd:"
	printf '%s\n' "$out"
	cat "$fs/etc/passwd" "$fs/etc/group"
	fail=1
else
	echo "ok: systemd-sysusers: fetchd uid $uid gid $gid home $home"
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "skip: systemd-tmpfiles --create needs root to set owners"
	exit $fail
fi

tfail=0
out=$(systemd-tmpfiles --create --root="$fs" fetchd.conf 2>&1)
rc=$?
if [ "$rc" -ne 0 ]; then
	echo "FAIL: systemd-tmpfiles --create fetchd.tmpfiles (status $rc):"
	printf '%s\n' "$out"
	tfail=1
fi
# path mode: every directory is owned by fetchd:fetchd.
while read -r path mode; do
	got=$(stat -c '%a %u %g' "$fs$path" 2>/dev/null)
	if [ "$got" != "$mode $uid $gid" ]; then
		echo "FAIL: tmpfiles: $path is \"${got:-missing}\", want \"$mode $uid $gid\""
		tfail=1
	fi
done <<EOF
/var/spool/fetchd 750
/var/spool/fetchd/tmp 2770
/var/spool/fetchd/new 2770
/var/spool/fetchd/active 750
/var/spool/fetchd/done 750
/var/spool/fetchd/failed 750
/var/spool/fetchd/hooks 750
/var/lib/fetchd 750
/var/lib/fetchd/downloads 750
/run/fetchd 750
EOF
if [ "$tfail" -eq 0 ]; then
	echo "ok: systemd-tmpfiles: spool, state and runtime directories, owners and modes"
else
	fail=1
fi
exit $fail
