#!/usr/bin/env python3
"""
e2e_guarantees.py: the promises of the README that no other suite would
notice breaking, each checked against the real daemon (FETCHD) fetching
from tests/httpd.py on 127.0.0.1.

    FETCHD=src/fetchd FETCHCTL=src/fetchctl python3 tests/e2e_guarantees.py -v

Covered: the retries are used up exactly (attempts and requests counted);
a row failed before a restart still fails the job; a 206 for another
range than asked starts the file over;
408 is transient; a second SIGTERM stops at once, SIGINT is as graceful as
SIGTERM, nothing is claimed during the grace period; cancel keeps the rows
of URLs already fetched; pause lets running transfers finish and starts no
new one; every spool hand-off is followed by an fsync of the directory it
went into, and daemon.sync decides whether the job's files are synced
(both seen in the daemon's system calls under strace).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import (FetchdTestCase, body, config, no_daemon,  # noqa: E402
                        still_for, wait_for)

KIB = 1024
STRACE = shutil.which("strace")


class GuaranteeCase(FetchdTestCase):
    settings = {"workers": {"count": 2}}

    def ctl(self, *args):
        p = subprocess.run([ft.FETCHCTL, "-s", self.daemon.socket] +
                           list(args), capture_output=True, text=True,
                           timeout=30 * ft.SCALE)
        return p.returncode, p.stdout, p.stderr

    def ctl_ok(self, *args):
        rc, out, err = self.ctl(*args)
        self.assertEqual(rc, 0, "fetchctl %s: %s" % (" ".join(args), err))
        return out

    def part_of(self, job, name):
        return os.path.join(self.job_dir(job), name + ".part")


class TestRetries(GuaranteeCase):

    @config(http={"retries": 2})
    def test_retries_are_used_up_exactly(self):
        u = self.url("always503.bin", status=503, key="k503")
        self.drop_job("r", [u])
        state, rows = self.wait_done("r")
        self.assertEqual(state, "failed")
        self.assert_row(rows[0], "failed", 503, 0, 3)
        self.assertEqual(len(self.server.requests_for("k503")), 3)

    @config(http={"retries": 0})
    def test_no_retries_means_one_attempt(self):
        u = self.url("once503.bin", status=503, key="k0")
        self.drop_job("r0", [u])
        state, rows = self.wait_done("r0")
        self.assertEqual(state, "failed")
        self.assert_row(rows[0], "failed", 503, 0, 1)
        self.assertEqual(len(self.server.requests_for("k0")), 1)

    @config(http={"retries": 3})
    def test_408_is_retried(self):
        u = self.url("t408.bin", size=3000, seed=8, status=[408, 200],
                     key="k408")
        self.drop_job("t408", [u])
        state, rows = self.wait_done("t408")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, 3000, 2)
        self.assert_file(os.path.join(self.job_dir("t408"), "t408.bin"),
                         body(3000, 8))


class TestRestart(GuaranteeCase):

    def test_failed_row_of_an_earlier_run_fails_the_job(self):
        """A URL failed for good before a kill -9: after the restart the
        job still ends in failed/ (and not in done/), with that row."""
        self.drop_job("f", [self.url("gone.bin", status=404),
                            self.url("slow.bin", size=200 * KIB,
                                     drip=100 * KIB)])
        res = self.daemon.spool_path("active", "f.result")
        wait_for(lambda: os.path.exists(res) and
                 "\tfailed\t404\t" in open(res).read(), 10,
                 "the 404 row in J.result", self.daemon.log_tail)
        self.assertEqual(self.daemon.kill9(), -9)
        self.daemon.start()
        state, rows = self.wait_done("f", 30)
        self.assertEqual(state, "failed")
        self.assert_row(rows[0], "failed", 404)
        self.assert_row(rows[1], "ok", None, 200 * KIB)


class TestWrongRange(GuaranteeCase):

    @config(http={"retries": 3})
    def test_206_for_another_range_starts_over(self):
        """A resume answered with a 206 for another range than asked (its
        Content-Range says so): nothing of it is written, the file starts
        over from byte 0, and the result is byte-exact."""
        size = 50 * KIB
        u = self.url("r.bin", size=size, seed=6, truncate=20000,
                     cr_shift=7, cr_on=2, key="kcr")
        self.drop_job("cr", [u])
        state, rows = self.wait_done("cr")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, size, 3)
        self.assert_file(os.path.join(self.job_dir("cr"), "r.bin"),
                         body(size, 6))
        reqs = self.server.requests_for("kcr")
        self.assertEqual([r["status"] for r in reqs], [200, 206, 200])
        self.assertIsNotNone(reqs[1]["range"])
        self.assertIsNone(reqs[2]["range"])


class TestSignals(GuaranteeCase):

    @config(daemon={"shutdown_grace": 120})
    def test_second_sigterm_stops_now(self):
        size = 2000 * KIB
        self.drop_job("slow", [self.url("s.bin", size=size, drip=50 * KIB)])
        self.wait_file_size(self.part_of("slow", "s.bin"), 1)
        self.daemon.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping" in self.daemon.log_text(), 5,
                 "the first SIGTERM in the log", self.daemon.log_tail)
        # The grace period is two minutes: still running a moment later.
        self.assertTrue(still_for(self.daemon.running, 0.3),
                        "fetchd exited before its grace period was over")
        t = time.monotonic()
        self.daemon.proc.send_signal(signal.SIGTERM)
        self.daemon.proc.wait(timeout=10 * ft.SCALE)
        self.assertLess(time.monotonic() - t, 10 * ft.SCALE)
        self.assertEqual(self.daemon.proc.returncode, 0, self.daemon.log_tail())
        self.daemon._reap()
        kept = os.stat(self.part_of("slow", "s.bin")).st_size
        self.assertGreater(kept, 0)
        self.assertLess(kept, size)
        self.assertIn(("active", "slow"), self.daemon.spool_entries("slow"))

    @config(daemon={"shutdown_grace": 60})
    def test_sigint_lets_running_transfers_finish(self):
        size = 200 * KIB
        self.drop_job("int", [self.url("i.bin", size=size, seed=3,
                                       drip=200 * KIB)])
        self.wait_file_size(self.part_of("int", "i.bin"), 1)
        self.daemon.proc.send_signal(signal.SIGINT)
        self.daemon.proc.wait(timeout=30 * ft.SCALE)
        self.assertEqual(self.daemon.proc.returncode, 0, self.daemon.log_tail())
        self.daemon._reap()
        self.assertIsNotNone(self.daemon.finished("int"),
                             self.daemon.spool_listing())
        self.assert_file(os.path.join(self.job_dir("int"), "i.bin"),
                         body(size, 3))

    @config(daemon={"shutdown_grace": 60, "rescan_interval": 1})
    def test_nothing_is_claimed_during_the_grace_period(self):
        size = 300 * KIB
        self.drop_job("first", [self.url("f.bin", size=size,
                                         drip=150 * KIB)])
        self.wait_file_size(self.part_of("first", "f.bin"), 1)
        self.daemon.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping" in self.daemon.log_text(), 5,
                 "SIGTERM in the log", self.daemon.log_tail)
        self.drop_job("late", [self.url("late.bin")])
        self.daemon.proc.wait(timeout=30 * ft.SCALE)
        self.assertEqual(self.daemon.proc.returncode, 0, self.daemon.log_tail())
        self.daemon._reap()
        self.assertIsNotNone(self.daemon.finished("first"))
        self.assertEqual(self.daemon.spool_entries("late"), [("new", "late")])
        self.assertEqual(self.server.requests_for("/f/late.bin"), [])
        # The next start takes it.
        self.daemon.start()
        self.assertEqual(self.wait_done("late")[0], "done")


class TestControl(GuaranteeCase):

    def test_cancel_keeps_the_rows_of_fetched_urls(self):
        a, b = self.url("a.bin", size=500, seed=1), self.url("b.bin", seed=2)
        self.drop_job("c", [a, b, self.url("h.bin", hang=1)])
        for n in ("a.bin", "b.bin"):
            wait_for(lambda: os.path.exists(
                os.path.join(self.job_dir("c"), n)), 10, n + " fetched",
                self.daemon.log_tail)
        self.assertEqual(self.ctl_ok("cancel", "c"), "cancelled c\n")
        state, rows = self.wait_done("c")
        self.assertEqual(state, "failed")
        self.assertEqual(len(rows), 3)
        self.assert_row(rows[0], "ok", 200, 500, 1, "a.bin")
        self.assert_row(rows[1], "ok", 200, 1024, 1, "b.bin")
        self.assert_row(rows[2], "failed")
        self.assertIn("cancelled", rows[2].error)
        self.assert_file(os.path.join(self.job_dir("c"), "a.bin"),
                         body(500, 1))

    def test_connect_failure_other_than_permission_is_status_4(self):
        """fetchctl(1): status 4 is permission denied "or the connection
        failed otherwise"; here the socket path is a symlink loop."""
        loop = os.path.join(self.tmp, "loop.sock")
        os.symlink(loop, loop)
        p = subprocess.run([ft.FETCHCTL, "-s", loop, "ping"],
                           capture_output=True, text=True,
                           timeout=30 * ft.SCALE)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("cannot connect to %s" % loop, p.stderr)

    @config(workers={"count": 1})
    def test_pause_lets_running_transfers_finish(self):
        size = 150 * KIB
        self.drop_job("p", [self.url("run.bin", size=size, seed=5,
                                     drip=150 * KIB),
                            self.url("held.bin", key="kheld")])
        self.wait_file_size(self.part_of("p", "run.bin"), 1)
        self.ctl_ok("pause")
        final = os.path.join(self.job_dir("p"), "run.bin")
        wait_for(lambda: os.path.exists(final), 20,
                 "the running transfer to finish while paused",
                 self.daemon.log_tail)
        self.assert_file(final, body(size, 5))
        self.assertTrue(still_for(
            lambda: not self.server.requests_for("kheld"), 0.5),
            "a transfer started while paused")
        self.assertIsNone(self.daemon.finished("p"))
        self.ctl_ok("resume")
        state, rows = self.wait_done("p")
        self.assertEqual(state, "done")
        self.assertEqual([r.outcome for r in rows], ["ok", "ok"])


# strace -y prints an fd as N</its/path>.
SYSCALL = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
FDPATH = re.compile(r"\d+<([^>]*)>")


def trace_calls(path):
    """[(name, [fd paths in the arguments], args, ret)] of a strace -f -y
    log, in order."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = SYSCALL.match(line.strip())
            if m:
                out.append((m.group(1), FDPATH.findall(m.group(2)),
                            m.group(2), int(m.group(3))))
    return out


@unittest.skipIf(STRACE is None, "strace is not installed")
class TestDurability(GuaranteeCase):
    """The hand-off's durability steps, seen in the daemon's system calls."""

    def start_traced(self):
        self.trace = os.path.join(self.tmp, "strace.log")
        self.daemon.wrapper = [STRACE, "-f", "-y", "-qq", "-o", self.trace,
                               "-e", "trace=fsync,fdatasync,syncfs,rename,"
                               "renameat,renameat2"]
        # LeakSanitizer cannot run under ptrace: off for this daemon only.
        old = os.environ.get("ASAN_OPTIONS")
        if old is not None:
            os.environ["ASAN_OPTIONS"] = old + ":detect_leaks=0"
        try:
            self.daemon.start(timeout=30)
        finally:
            if old is not None:
                os.environ["ASAN_OPTIONS"] = old
        # fetchd is strace's child: killed by pid at cleanup should the
        # test fail before it stops it (killing strace leaves it running).
        pid = self.daemon.pid
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            self.traced = int(f.read().split()[0])
        self.addCleanup(self.kill_traced)

    def kill_traced(self):
        try:
            os.kill(self.traced, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def run_job(self, name):
        self.drop_job(name, [self.url("d%d.bin" % i, seed=i, size=2000)
                             for i in range(3)])
        state, rows = self.wait_done(name, 30)
        self.assertEqual(state, "done")
        # strace does not pass SIGTERM on: signal fetchd, its child.
        os.kill(self.traced, signal.SIGTERM)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.log_tail())
        return trace_calls(self.trace)

    def assert_dir_synced_after_renames(self, calls):
        spool = os.path.realpath(self.daemon.spool)
        renames = 0
        for i, (name, fds, args, ret) in enumerate(calls):
            if not name.startswith("rename") or ret != 0 or len(fds) < 2:
                continue
            dst = fds[-1]
            if not dst.startswith(spool):
                continue
            renames += 1
            later = [c for c in calls[i + 1:]
                     if c[0] == "fsync" and c[1] == [dst] and c[3] == 0]
            self.assertTrue(later, "rename into %s (%s) is never followed "
                            "by an fsync of %s" % (dst, args, dst))
        # Claim, the result's and the job's moves into done/.
        self.assertGreaterEqual(renames, 3, calls)

    def assert_result_synced_before_move(self, calls, job):
        res = os.path.join(os.path.realpath(self.daemon.spool), "active",
                           job + ".result")
        moved = [i for i, c in enumerate(calls)
                 if c[0].startswith("rename") and c[3] == 0 and
                 '"%s.result"' % job in c[2]]
        self.assertTrue(moved, "the result was never moved")
        synced = [i for i, c in enumerate(calls[:moved[0]])
                  if c[0] in ("fsync", "fdatasync") and c[1] == [res]]
        self.assertTrue(synced, "%s moved before it was synced" % res)

    @no_daemon
    @config(daemon={"sync": "yes"})
    def test_sync_yes(self):
        self.start_traced()
        calls = self.run_job("dur")
        self.assert_dir_synced_after_renames(calls)
        self.assert_result_synced_before_move(calls, "dur")
        dl = os.path.join(os.path.realpath(self.daemon.dl), "dur")
        syncs = [i for i, c in enumerate(calls)
                 if c[0] == "syncfs" and c[1] == [dl] and c[3] == 0]
        self.assertEqual(len(syncs), 1, "syncfs calls on %s: %d" % (
            dl, len(syncs)))
        done = [i for i, c in enumerate(calls)
                if c[0].startswith("rename") and '"dur"' in c[2] and
                c[1][-1].endswith("/done")]
        self.assertTrue(done and syncs[0] < done[0],
                        "the files were not synced before the job's move")

    @no_daemon
    @config(daemon={"sync": "no"})
    def test_sync_no(self):
        self.start_traced()
        calls = self.run_job("nodur")
        self.assert_dir_synced_after_renames(calls)
        self.assertEqual([c for c in calls if c[0] == "syncfs"], [])
        dl = os.path.realpath(self.daemon.dl)
        self.assertEqual([c for c in calls if c[0] in ("fsync", "fdatasync")
                          and c[1] and c[1][0].startswith(dl)], [])


if __name__ == "__main__":
    ft.main()
