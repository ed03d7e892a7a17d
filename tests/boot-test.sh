#!/bin/sh
#
# boot-test.sh: install the fetchd .deb in a Debian tree, boot it with a
# real systemd under systemd-nspawn, and check the service as a user meets
# it: "systemctl start fetchd" reaches active (running) once the daemon
# reported READY; a producer in group fetchd drops a job that is fetched
# (from tests/httpd.py, run inside the container on 127.0.0.1) and reads its
# result; fetchctl answers the producer and refuses nobody; "systemctl
# reload" keeps the same process running; "systemctl stop" while a transfer
# is in flight lets it finish, leaves nothing in active/ and removes the
# socket; the journal holds the daemon's lines.
#
# The minbase tree of the host's Debian release is built once with
# debootstrap from the archive apt already uses, and kept in
# /var/tmp/fetchd-nspawn-root (FETCHD_NSPAWN_ROOT); every run works on a
# copy of it. The .deb is $FETCHD_DEB, or is built from a copy of the
# source tree (dpkg-buildpackage, DEB_BUILD_OPTIONS=nocheck), never in the
# tree itself. Runs are serialised with a lock next to the cached tree.
#
# The container shares the host's network; the checks run in it through
# nsenter on its PID 1 (there is no host systemd or D-Bus to go through).
# On exit the container is powered off (the timeout this script put it
# under stops it otherwise), the empty cgroups systemd-nspawn leaves
# behind are removed, and so is the copy.
#
# Needs root. Skipped (77) without root, under fakeroot, inside a Debian
# package build, with FETCHD_BOOT_TEST=no, on a host that is not Debian,
# and when systemd-nspawn, debootstrap or the packaging tools are missing
# and apt-get is missing. Exit 0 when every check passed, 1 otherwise (also
# when a package it needs cannot be installed).

set -u
LC_ALL=C
export LC_ALL
umask 022

skip() {
	echo "SKIP: $*"
	exit 77
}

case ${FETCHD_BOOT_TEST:-} in
no | 0 | false) skip "FETCHD_BOOT_TEST=$FETCHD_BOOT_TEST" ;;
esac
[ "$(id -u)" -eq 0 ] || skip "the boot test needs root (debootstrap, systemd-nspawn)"
[ -z "${FAKEROOTKEY:-}" ] || skip "running under fakeroot, not as root"
[ -z "${DEB_RULES_REQUIRES_ROOT:-}" ] ||
    skip "inside a Debian package build (dpkg-buildpackage)"

if [ -z "${TESTS_SRCDIR:-}" ]; then
	TESTS_SRCDIR=$(cd "$(dirname "$0")" && pwd)
fi
top=$(cd "$TESTS_SRCDIR/.." && pwd)
cache=${FETCHD_NSPAWN_ROOT:-/var/tmp/fetchd-nspawn-root}
apt_cache=$cache-apt-archives
include=systemd,systemd-sysv,dbus,procps,python3
python=${PYTHON3:-python3}

# --- what to boot, and from where ------------------------------------

suite=
if [ -r /etc/os-release ]; then
	suite=$(. /etc/os-release && [ "${ID:-}" = debian ] &&
	    echo "${VERSION_CODENAME:-}")
fi
[ -n "$suite" ] || skip "the host is not Debian with a release name in /etc/os-release"

# The first archive apt uses for $suite: deb822 sources first, then
# one-line sources. Only network and file URIs are usable by debootstrap.
mirror=
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
	mirror=$(awk -v suite="$suite" '
	BEGIN { RS = ""; FS = "\n" }
	{
		uris = ""; suites = ""; types = ""; enabled = "yes"
		for (i = 1; i <= NF; i++) {
			line = $i
			if (line ~ /^URIs:/) {
				sub(/^URIs:[ \t]*/, "", line); uris = line
			} else if (line ~ /^Suites:/) {
				sub(/^Suites:[ \t]*/, "", line); suites = line
			} else if (line ~ /^Types:/) {
				types = line
			} else if (line ~ /^Enabled:/) {
				sub(/^Enabled:[ \t]*/, "", line); enabled = line
			}
		}
		if (enabled == "no" || types !~ /[ \t]deb([ \t]|$)/)
			next
		n = split(suites, s, /[ \t]+/)
		for (j = 1; j <= n; j++)
			if (s[j] == suite) {
				split(uris, u, /[ \t]+/)
				print u[1]
				exit
			}
	}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ]; then
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		mirror=$(awk -v suite="$suite" '
		$1 == "deb" {
			i = 2
			if ($2 ~ /^\[/) {
				while (i <= NF && $i !~ /\]$/)
					i++
				i++
			}
			if ($(i + 1) == suite) {
				print $i
				exit
			}
		}' "$f")
		[ -n "$mirror" ] && break
	done
fi
case $mirror in
http://* | https://* | ftp://* | file:/*) ;;
*) skip "no usable Debian archive for $suite in the apt sources (found \"$mirror\")" ;;
esac

# --- tools --------------------------------------------------------------

apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends "$@" >/dev/null 2>&1 && return 0
	apt-get update >/dev/null 2>&1 &&
	    DEBIAN_FRONTEND=noninteractive apt-get install -y \
	    --no-install-recommends "$@" >/dev/null 2>&1
}

need=
command -v systemd-nspawn >/dev/null 2>&1 || need="$need systemd-container"
command -v debootstrap >/dev/null 2>&1 || need="$need debootstrap"
if [ -z "${FETCHD_DEB:-}" ]; then
	command -v dpkg-buildpackage >/dev/null 2>&1 || need="$need dpkg-dev"
	command -v dh >/dev/null 2>&1 || need="$need debhelper"
fi
for t in nsenter timeout flock runuser; do
	command -v $t >/dev/null 2>&1 || skip "$t is missing (util-linux, coreutils)"
done
if [ -n "$need" ]; then
	command -v apt-get >/dev/null 2>&1 || skip "missing:$need, and no apt-get"
	echo "installing:$need"
	# shellcheck disable=SC2086
	# As root on Debian with an archive configured, a failed install is a
	# failure of this run, not a reason to skip it.
	apt_install $need || { echo "FAIL: cannot install$need"; exit 1; }
fi

# --- state and cleanup ------------------------------------------------

work=
tpid=
pid1=
fail=0
checks=0

# The empty cgroups systemd-nspawn --keep-unit leaves under our own cgroup
# (payload/..., supervisor) in each hierarchy. rmdir removes only empty
# directories, so a live container's cgroups survive this.
cgroup_cleanup() {
	while IFS=: read -r _ ctrl path; do
		case $ctrl in
		name=systemd) mnt=/sys/fs/cgroup/systemd ;;
		"")
			mnt=/sys/fs/cgroup/unified
			[ -d "$mnt" ] || mnt=/sys/fs/cgroup
			;;
		*) continue ;;
		esac
		base=$mnt${path%/}
		for d in payload supervisor; do
			[ -d "$base/$d" ] &&
			    find "$base/$d" -depth -type d -exec rmdir {} + \
			    2>/dev/null
		done
	done < /proc/self/cgroup
	return 0
}

# Wait up to $2 tenths of a second for process $1 to end.
wait_gone() {
	i=0
	while kill -0 "$1" 2>/dev/null; do
		[ "$i" -ge "$2" ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 0
}

cleanup() {
	if [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; then
		if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
			timeout 30 nsenter -t "$pid1" -a systemctl poweroff \
			    >/dev/null 2>&1
		fi
		if ! wait_gone "$tpid" 300; then
			# timeout(1) passes SIGTERM on to systemd-nspawn, which
			# asks the container to power off; -k kills it later.
			kill -TERM "$tpid" 2>/dev/null
			wait_gone "$tpid" 300
		fi
	fi
	cgroup_cleanup
	if [ -n "$work" ]; then
		if [ -n "$tpid" ] && kill -0 "$tpid" 2>/dev/null; then
			echo "warning: the container is still running; leaving $work"
		elif [ -n "${FETCHD_BOOT_KEEP:-}" ]; then
			echo "kept $work"
		else
			rm -rf "$work"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

mkdir -p "$(dirname "$cache")" "$apt_cache/partial" || exit 1
exec 9>"$cache.lock"
if ! flock -w 1800 9; then
	echo "FAIL: another boot test holds $cache.lock"
	exit 1
fi
work=$(mktemp -d "$cache-run.XXXXXX") || exit 1

# --- the cached tree --------------------------------------------------

stamp="$suite $mirror $include"
if [ "$(cat "$cache/.fetchd-boot-test" 2>/dev/null)" != "$stamp" ]; then
	echo "building the $suite minbase tree in $cache from $mirror (once)"
	rm -rf "$cache.new"
	if ! debootstrap --variant=minbase --include="$include" "$suite" \
	    "$cache.new" "$mirror" > "$work/debootstrap.log" 2>&1; then
		echo "FAIL: debootstrap:"
		tail -20 "$work/debootstrap.log"
		rm -rf "$cache.new"
		exit 1
	fi
	echo "$stamp" > "$cache.new/.fetchd-boot-test"
	rm -rf "$cache"
	mv "$cache.new" "$cache" || exit 1
fi

# --- the package ------------------------------------------------------

if [ -n "${FETCHD_DEB:-}" ]; then
	deb=$FETCHD_DEB
	[ -f "$deb" ] || { echo "FAIL: FETCHD_DEB=$deb: no such file"; exit 1; }
else
	src=$work/src/fetchd
	mkdir -p "$src" || exit 1
	echo "building the .deb from a copy of $top"
	# A git checkout: its tracked and new files, without build products
	# (.gitignore). Anything else (a release tarball unpacked, also one
	# inside somebody's checkout as make distcheck does): all of it,
	# writable, without a configured build.
	if [ "$(git -C "$top" rev-parse --show-toplevel 2>/dev/null)" = \
	    "$(cd "$top" && pwd -P)" ]; then
		(cd "$top" && git ls-files -z -co --exclude-standard |
		    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		    tar --null -T - -cf -) | tar -C "$src" -xf - || exit 1
	else
		cp -a "$top/." "$src/" || exit 1
		chmod -R u+w "$src" || exit 1
		[ -f "$src/Makefile" ] && make -C "$src" distclean >/dev/null 2>&1
	fi
	if ! (cd "$src" && dpkg-checkbuilddeps -Pnocheck) > "$work/deps.log" 2>&1; then
		pkgs=$(sed -n 's/.*Unmet build dependencies: //p' "$work/deps.log" |
		    sed 's/([^)]*)//g; s/<[^>]*>//g; s/|[^,]*//g; s/,/ /g; s/:[a-z0-9]*//g')
		echo "installing build dependencies: $pkgs"
		# shellcheck disable=SC2086
		apt_install $pkgs || {
			echo "FAIL: cannot install the build dependencies:$pkgs"
			exit 1
		}
	fi
	if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}" \
	    dpkg-buildpackage -b -us -uc) > "$work/build.log" 2>&1; then
		echo "FAIL: dpkg-buildpackage (in a copy of the tree):"
		grep -E 'error|Error|undefined reference' "$work/build.log" | head -20
		echo "..."
		tail -10 "$work/build.log"
		exit 1
	fi
	deb=$(ls "$work"/src/fetchd_*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || { echo "FAIL: dpkg-buildpackage made no fetchd_*.deb"; exit 1; }
fi
echo "package: $(basename "$deb")"

# --- the container's tree ---------------------------------------------

root=$work/root
cp -a "$cache" "$root" || exit 1
# Not in /tmp: systemd-nspawn mounts a tmpfs there.
mkdir -p "$root/srv" &&
    cp "$deb" "$root/srv/fetchd.deb" &&
    cp "$TESTS_SRCDIR/httpd.py" "$root/srv/httpd.py" || exit 1

# Commands in the tree without booting it (package installation).
nspawn_run() {
	timeout -k 10 600 systemd-nspawn -q -D "$root" -M "fetchd-inst-$$" \
	    --register=no --keep-unit --console=pipe \
	    --bind="$apt_cache:/var/cache/apt/archives" \
	    -E DEBIAN_FRONTEND=noninteractive "$@" < /dev/null
	rc=$?
	cgroup_cleanup
	return $rc
}

echo "installing the package in the container's tree"
if ! nspawn_run apt-get install -y --no-install-recommends /srv/fetchd.deb \
    > "$work/install.log" 2>&1; then
	# The cached package lists may be older than the archive.
	if ! nspawn_run sh -c 'apt-get update &&
	    apt-get install -y --no-install-recommends /srv/fetchd.deb' \
	    > "$work/install.log" 2>&1; then
		echo "FAIL: apt-get install fetchd.deb in the container:"
		tail -30 "$work/install.log"
		exit 1
	fi
fi
if ! nspawn_run useradd --create-home --groups fetchd producer \
    > "$work/useradd.log" 2>&1; then
	echo "FAIL: useradd producer:"
	cat "$work/useradd.log"
	exit 1
fi

# --- boot -------------------------------------------------------------

machine=fetchd-boot-$$
timeout -k 15 900 systemd-nspawn -D "$root" -b -M "$machine" \
    --register=no --keep-unit --console=passive \
    > "$work/nspawn.log" 2>&1 < /dev/null &
tpid=$!

# PID 1 of the container: the child of systemd-nspawn (itself the child of
# timeout) once it runs systemd.
i=0
while [ "$i" -lt 300 ]; do
	for n in $(cat /proc/"$tpid"/task/*/children 2>/dev/null); do
		for c in $(cat /proc/"$n"/task/*/children 2>/dev/null); do
			if [ "$(cat /proc/"$c"/comm 2>/dev/null)" = systemd ]; then
				pid1=$c
			fi
		done
	done
	[ -n "$pid1" ] && break
	kill -0 "$tpid" 2>/dev/null || break
	sleep 0.1
	i=$((i + 1))
done
if [ -z "$pid1" ]; then
	echo "FAIL: the container did not start systemd:"
	tail -20 "$work/nspawn.log"
	exit 1
fi

# --- transcript helpers -------------------------------------------------

ct() {
	timeout -k 5 120 nsenter -t "$pid1" -a "$@"
}

# Print a command run in the container and its output; return its status.
show() {
	echo "# $*"
	ct "$@" > "$work/out" 2>&1
	rc=$?
	sed 's/^/    /' "$work/out"
	[ "$rc" -eq 0 ] || echo "    (exit status $rc)"
	return $rc
}

pass() {
	checks=$((checks + 1))
	echo "ok: $*"
}

bad() {
	checks=$((checks + 1))
	fail=1
	echo "FAIL: $*"
}

prop() {
	ct systemctl show -p "$1" --value fetchd 2>/dev/null
}

# Wait up to $1 seconds for the shell condition $2 to hold in the container.
wait_ct() {
	ct sh -c "i=0; while ! { $2; }; do [ \$i -ge $(($1 * 10)) ] && exit 1;
	    sleep 0.1; i=\$((i + 1)); done" >/dev/null 2>&1
}

echo
echo "== boot (systemd-nspawn -b, PID 1 is $pid1 on the host)"
# systemctl talks to PID 1 over its private socket; wait for it first.
if ! wait_ct 60 'test -S /run/systemd/private'; then
	bad "systemd in the container did not open /run/systemd/private"
	tail -20 "$work/nspawn.log"
fi
show systemctl is-system-running --wait
state=$(cat "$work/out")
case $state in
running) pass "the container booted: $state" ;;
degraded)
	show systemctl --failed --no-pager
	pass "the container booted: degraded (see the failed units above)"
	;;
*) bad "the container did not finish booting: $state" ;;
esac

spool=/var/spool/fetchd

echo
echo "== install: user, directories, unit not enabled by the package"
show id fetchd
show id producer
show stat -c '%A %U:%G %n' $spool $spool/tmp $spool/new $spool/active \
    $spool/done $spool/failed /var/lib/fetchd /var/lib/fetchd/downloads \
    /etc/fetchd/fetchd.conf
show systemctl is-enabled fetchd
if [ "$(cat "$work/out")" = disabled ]; then
	pass "installing the package left fetchd.service disabled"
else
	bad "fetchd.service is \"$(cat "$work/out")\" after installation, want disabled"
fi
if ct systemctl is-active --quiet fetchd; then
	bad "the package started fetchd by itself"
else
	pass "installing the package did not start fetchd"
fi

echo
echo "== systemctl start fetchd"
if show systemctl start fetchd; then
	pass "systemctl start fetchd returned 0 (Type=notify: READY=1 received)"
else
	bad "systemctl start fetchd failed"
	show journalctl -u fetchd --no-pager -n 30
fi
show systemctl status fetchd --no-pager -n 0
active=$(prop ActiveState)
sub=$(prop SubState)
mainpid=$(prop MainPID)
if [ "$active/$sub" = active/running ] && [ "${mainpid:-0}" -gt 0 ]; then
	pass "fetchd is active (running), MainPID $mainpid"
else
	bad "fetchd is $active ($sub), MainPID ${mainpid:-none}"
fi
show ps -o user=,group=,pid=,args= -p "${mainpid:-1}"
case $(cat "$work/out") in
fetchd*fetchd*) pass "the daemon runs as user and group fetchd" ;;
*) bad "the daemon does not run as fetchd:fetchd" ;;
esac
# CAP_LEASE (bit 28) alone: the spool's check for a job still being written.
show grep '^CapEff:' /proc/"${mainpid:-1}"/status
case $(cat "$work/out") in
*0000000010000000) pass "the daemon's one capability is CAP_LEASE" ;;
*) bad "the daemon's effective capabilities are not CAP_LEASE alone" ;;
esac
show stat -c '%a %U:%G %n' /run/fetchd /run/fetchd/fetchd.sock
if [ "$(ct stat -c '%a %U:%G' /run/fetchd/fetchd.sock 2>/dev/null)" = "660 fetchd:fetchd" ] &&
    [ "$(ct stat -c '%a %U:%G' /run/fetchd 2>/dev/null)" = "750 fetchd:fetchd" ]; then
	pass "the control socket is 0660 fetchd:fetchd in /run/fetchd (0750)"
else
	bad "the control socket or /run/fetchd has the wrong mode or owner"
fi
show systemctl show -p Type -p NotifyAccess -p WatchdogUSec -p StatusText fetchd
show sh -c 'systemd-analyze security fetchd --no-pager | tail -n 1'

echo
echo "== a job from a producer in group fetchd"
show systemd-run --unit=fetchd-test-httpd python3 /srv/httpd.py \
    --port-file /srv/httpd.port --log /srv/httpd.log
if wait_ct 20 'test -s /srv/httpd.port'; then
	port=$(ct cat /srv/httpd.port)
	echo "test HTTP server (tests/httpd.py) on 127.0.0.1:$port in the container"
else
	bad "tests/httpd.py did not start in the container"
	port=0
fi
base=http://127.0.0.1:$port/f
# The job is written on the host into the container's /srv, then copied
# and renamed into the spool by the producer, as a producer would.
sum=$("$python" -c 'import hashlib, sys
sys.path.insert(0, sys.argv[1])
from httpd import body
print(hashlib.sha256(body(300000, 5)).hexdigest())' "$TESTS_SRCDIR")
printf '%s\n' '# boot test' "$base/a.bin?size=200000&seed=3" \
    "$base/b.bin?size=300000&seed=5 out=sub/b.bin sha256=$sum" > "$root/srv/job1"
printf '%s\n' "$base/slow.bin?size=60000&drip=20000" > "$root/srv/job2"
show cat /srv/job1
show runuser -u producer -- cp /srv/job1 $spool/tmp/job1
show runuser -u producer -- mv $spool/tmp/job1 $spool/new/job1
if wait_ct 60 "test -e $spool/done/job1.result || test -e $spool/failed/job1.result"; then
	show ls -l $spool/done $spool/failed
	if ct test -e $spool/done/job1.result; then
		pass "job1 reached done/"
	else
		bad "job1 reached failed/"
	fi
else
	bad "job1 did not finish within 60 s"
	show ls -lR $spool
fi
show runuser -u producer -- cat $spool/done/job1.result
if ct runuser -u producer -- awk -F '\t' '
    /^#/ { if (NR == 1) head = 1; next }
    $2 == "ok" { ok++ }
    END { exit !(head && ok == 2 && NR == 3) }' $spool/done/job1.result; then
	pass "job1.result: a '#' header and two ok rows, readable by the producer"
else
	bad "job1.result is not a header and two ok rows readable by the producer"
fi
show runuser -u producer -- ls -lR /var/lib/fetchd/downloads/job1
if ct runuser -u producer -- python3 -c 'import sys
sys.path.insert(0, "/srv")
from httpd import body
d = "/var/lib/fetchd/downloads/job1/"
ok = open(d + "a.bin", "rb").read() == body(200000, 3) and \
    open(d + "sub/b.bin", "rb").read() == body(300000, 5)
sys.exit(0 if ok else 1)' >/dev/null 2>&1; then
	pass "the downloaded files hold the served bytes and the producer can read them"
else
	bad "the downloaded files are missing, wrong or unreadable by the producer"
fi

echo
echo "== fetchctl"
if show runuser -u producer -- fetchctl stats; then
	pass "fetchctl stats answers the producer"
else
	bad "fetchctl stats fails for the producer"
fi
if ct runuser -u producer -- fetchctl stats --json > "$work/stats.json" 2>&1 &&
    "$python" -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["jobs"]["done"] >= 1 else 1)' "$work/stats.json" 2>/dev/null; then
	pass "fetchctl stats --json is JSON and counts job1 in jobs.done"
else
	bad "fetchctl stats --json: not JSON with jobs.done >= 1: $(head -c 300 "$work/stats.json")"
fi
show runuser -u nobody -- fetchctl stats
rc=$?
if [ "$rc" -eq 4 ]; then
	pass "fetchctl stats refuses nobody with exit status 4"
else
	bad "fetchctl stats as nobody exited $rc, want 4 (permission denied)"
fi

echo
echo "== systemctl reload fetchd"
if show systemctl reload fetchd; then
	pass "systemctl reload fetchd returned 0"
else
	bad "systemctl reload fetchd failed"
fi
sleep 1
active=$(prop ActiveState)
sub=$(prop SubState)
pid=$(prop MainPID)
show systemctl show -p ActiveState -p SubState -p MainPID -p NRestarts fetchd
if [ "$active/$sub" = active/running ] && [ "$pid" = "$mainpid" ]; then
	pass "fetchd is still active (running) with the same MainPID $pid"
else
	bad "after reload fetchd is $active ($sub), MainPID $pid (was $mainpid)"
fi

echo
echo "== systemctl stop fetchd with a transfer in flight"
show cat /srv/job2
show runuser -u producer -- cp /srv/job2 $spool/tmp/job2
show runuser -u producer -- mv $spool/tmp/job2 $spool/new/job2
# In flight: its .part file has received bytes (the server drips it for
# about three seconds, well within shutdown_grace).
if wait_ct 20 "test -s /var/lib/fetchd/downloads/job2/slow.bin.part"; then
	pass "job2 was claimed and its transfer is receiving bytes"
else
	bad "job2's transfer did not start within 20 s"
fi
if show systemctl stop fetchd; then
	pass "systemctl stop fetchd returned 0"
else
	bad "systemctl stop fetchd failed"
fi
show systemctl show -p ActiveState -p Result -p ExecMainStatus fetchd
if [ "$(prop ActiveState)" = inactive ] && [ "$(prop Result)" = success ]; then
	pass "fetchd stopped cleanly (inactive, result success)"
else
	bad "fetchd did not stop cleanly"
fi
show ls -lA $spool/active $spool/done
if [ -z "$(ct ls -A $spool/active 2>/dev/null)" ]; then
	pass "nothing is left in active/"
else
	bad "active/ is not empty after stop"
fi
if ct test -e $spool/done/job2.result; then
	pass "the in-flight job2 finished within shutdown_grace and reached done/"
else
	bad "job2 did not reach done/ during the stop"
fi
if ct test -e /run/fetchd/fetchd.sock; then
	bad "the control socket is still there after stop"
else
	pass "the control socket is gone after stop"
fi
show runuser -u producer -- fetchctl ping
rc=$?
if [ "$rc" -eq 3 ]; then
	pass "fetchctl exits 3 when fetchd is not running"
else
	bad "fetchctl ping with fetchd stopped exited $rc, want 3"
fi

echo
echo "== journalctl -u fetchd"
show journalctl -u fetchd --no-pager -o short
n=$(ct journalctl --no-pager -o cat _SYSTEMD_UNIT=fetchd.service 2>/dev/null |
    grep -c .)
if [ "${n:-0}" -gt 0 ]; then
	pass "the journal holds $n lines logged by fetchd"
else
	bad "the journal holds no lines from fetchd"
fi

echo
if [ "$fail" -eq 0 ]; then
	echo "boot-test: all $checks checks passed"
else
	echo "boot-test: some of $checks checks FAILED"
fi
exit $fail
