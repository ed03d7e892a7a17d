#!/usr/bin/env python3
"""
e2e_faults.py: the daemon under failing resources, each fault made for real
against the real daemon (FETCHD) fetching from tests/httpd.py on 127.0.0.1:

    FETCHD=src/fetchd FETCHCTL=src/fetchctl \\
    FETCHD_FAULTSHIM=tests/faultshim.so python3 tests/e2e_faults.py -v

- a full spool (a small tmpfs): a job that cannot start, or cannot write
  its records while it runs, waits (shown by `fetchctl stats` and `jobs`)
  and completes once space returns, without a restart, nothing fetched
  twice;
- a full download directory: URLs are retried and complete once space
  returns, or fail with "No space left" when the retries run out, leaving
  no .part behind;
- a read-only download directory: every URL fails with a clear error, the
  job ends in failed/, the daemon keeps running;
- EIO from syncfs (daemon.sync) and from the spool's fsync, through
  tests/faultshim.c preloaded: the job does not reach done/ while the fault
  lasts and does once it is gone;
- a low open file limit under each engine: the count is lowered with a log
  line and every URL is fetched.
- one failed allocation at a time (faultshim.c, FETCHD_FAULT_MALLOC_AFTER
  over FETCHD_FAULT_MALLOC_FIRST..LAST, 1..60 by default), counted from the
  drop of a short job: no crash, the job ends in done/ or failed/ without a
  restart, fetchd exits with status 0.

Mounting needs root: those tests are skipped otherwise, with the reason.
"""

import errno
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import (FetchdTestCase, body, config, no_daemon,  # noqa: E402
                        still_for, wait_for)

KIB = 1024
TMPFS_SIZE = "512k"


def faultshim():
    """The preload library: FETCHD_FAULTSHIM, else next to the build's
    fetchd (build/tests/faultshim.so)."""
    p = os.environ.get("FETCHD_FAULTSHIM")
    if not p and ft.FETCHD:
        p = os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(ft.FETCHD))), "tests", "faultshim.so")
    return p if p and os.path.exists(p) else None


class FaultCase(FetchdTestCase):
    settings = {"workers": {"count": 4}}

    # -- fetchctl ------------------------------------------------------------

    def ctl(self, *args):
        p = subprocess.run([ft.FETCHCTL, "-s", self.daemon.socket] +
                           list(args), capture_output=True, text=True,
                           timeout=30 * ft.SCALE)
        self.assertEqual(p.returncode, 0, "fetchctl %s: %s"
                         % (" ".join(args), p.stderr))
        return p.stdout

    def stats(self):
        return json.loads(self.ctl("--json", "stats"))

    def jobs_json(self):
        return json.loads(self.ctl("--json", "jobs"))

    def active_job(self, name):
        for j in self.jobs_json()["active"]:
            if j["name"] == name:
                return j
        return None

    def wait_waiting(self, name, text, timeout=20):
        """Wait until the job is listed as waiting, its reason holding
        text; returns its entry in `jobs`."""
        def check():
            j = self.active_job(name)
            if j and j["state"] == "waiting" and text in j["waiting"]:
                return j
            return None
        return wait_for(check, timeout, "job %s waiting (%s)" % (name, text),
                        lambda: "jobs: %s\nspool:\n%s\nlog:\n%s" % (
                            self.ctl("jobs"), self.daemon.spool_listing(),
                            self.daemon.log_tail()))

    def assert_waiting_shown(self, name, text):
        """`fetchctl stats` and `jobs` (JSON and for people) show it."""
        st = self.stats()
        self.assertGreaterEqual(st["jobs"]["waiting"], 1, st["jobs"])
        self.assertIn(text, st["spool_error"])
        self.assertIn(name, st["spool_error"])
        self.assertIn("waiting", self.ctl("stats"))
        out = self.ctl("jobs")
        self.assertRegex(out, r"waiting: .*%s.*, retry in \d+ s" % text)

    def fetched_once(self, keys):
        for k in keys:
            n = len(self.server.requests_for(k))
            self.assertEqual(n, 1, "%s requested %d times" % (k, n))

    # -- file systems ----------------------------------------------------------

    def need_root(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a tmpfs (running as uid %d)"
                          % os.geteuid())

    def mount_tmpfs(self, path, size=TMPFS_SIZE, options=""):
        """A small tmpfs at path (made if missing), unmounted at cleanup
        after fetchd is stopped."""
        self.need_root()
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size +
                        options, "tmpfs", path], check=True)
        self.addCleanup(self.unmount, path)

    def unmount(self, path):
        if self.daemon.running():
            self.daemon.kill9()
        subprocess.run(["umount", "-l", path], check=False)

    def fill(self, path):
        """Write path until the file system is full; returns its size."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for chunk in (64 * KIB, 4 * KIB, 512, 1):
                buf = b"\0" * chunk
                while True:
                    try:
                        os.write(fd, buf)
                    except OSError as e:
                        if e.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return os.path.getsize(path)

    def stage_job(self, name, lines):
        """Write a job into spool/tmp (to be renamed in later)."""
        self.jobs.add(name)
        with open(self.daemon.spool_path("tmp", name), "w") as f:
            f.write("".join(u + "\n" for u in lines))

    def release_job(self, name):
        os.rename(self.daemon.spool_path("tmp", name),
                  self.daemon.spool_path("new", name))


class TestSpoolFull(FaultCase):

    @no_daemon
    def test_job_that_cannot_start_waits_and_then_runs(self):
        """Hole 4: a job claimed into a full spool cannot write its
        result; it waits (stats, jobs) and runs once space returns, with
        the same daemon."""
        self.mount_tmpfs(self.daemon.spool)
        self.daemon.start()
        pid = self.daemon.pid
        urls = [self.url("s%d.bin" % i, size=2000, seed=i, key="s%d" % i)
                for i in range(3)]
        self.stage_job("full", urls)
        filler = os.path.join(self.daemon.spool, "filler")
        self.fill(filler)
        self.release_job("full")
        self.wait_waiting("full", "No space left")
        self.assert_waiting_shown("full", "No space left")
        self.assertIn(("active", "full"), self.daemon.spool_entries("full"))
        os.unlink(filler)
        state, rows = self.wait_done("full", 30)
        self.assertEqual(state, "done")
        self.assertEqual(self.daemon.pid, pid)
        for i, r in enumerate(rows):
            self.assert_row(r, "ok", 200, 2000)
            self.assert_file(os.path.join(self.job_dir("full"),
                                          "s%d.bin" % i), body(2000, i))
        self.fetched_once("s%d" % i for i in range(3))
        self.assertEqual(self.stats()["jobs"]["waiting"], 0)

    @no_daemon
    def test_job_that_cannot_write_its_rows_waits_and_then_finishes(self):
        """Hole 4: the spool fills while the job runs (its rows no longer
        fit): it pauses, waits for space, then finishes without a
        restart; every URL is fetched once and has its row."""
        self.mount_tmpfs(self.daemon.spool)
        self.daemon.settings["workers"]["count"] = 16
        self.daemon.write_config()
        self.daemon.start()
        n = 80
        urls = [self.url("r%d.bin" % i, size=500, seed=i, key="r%d" % i,
                         delay=1000) for i in range(n)]
        self.drop_job("rows", urls)
        journal = self.daemon.spool_path("active", "rows.journal")
        wait_for(lambda: os.path.exists(journal) and
                 os.path.getsize(journal) > 0, 10, "claims in the journal",
                 self.daemon.log_tail)
        filler = os.path.join(self.daemon.spool, "filler")
        self.fill(filler)
        self.wait_waiting("rows", "No space left", 60)
        self.assert_waiting_shown("rows", "No space left")
        self.assertIn("rows: cannot write its result or journal",
                      self.daemon.log_text())
        os.unlink(filler)
        state, rows = self.wait_done("rows", 90)
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), n)
        for r in rows:
            self.assert_row(r, "ok", 200, 500)
        self.fetched_once("r%d" % i for i in range(n))


class TestDownloadDirFull(FaultCase):

    def mount_dl(self):
        self.mount_tmpfs(self.daemon.dl)
        self.daemon.start()
        return os.path.join(self.daemon.dl, "filler")

    @no_daemon
    @config(http={"retries": 40, "retry_delay": 1, "retry_max_delay": 1})
    def test_urls_are_retried_and_complete_when_space_returns(self):
        filler = self.mount_dl()
        self.fill(filler)
        self.drop_job("dfull", [self.url("big.bin", size=64 * KIB, seed=3)])
        wait_for(lambda: self.stats()["transfers"]["retried"] >= 2, 30,
                 "retries of the URL", self.daemon.log_tail)
        self.assertIsNone(self.daemon.finished("dfull"))
        os.unlink(filler)
        state, rows = self.wait_done("dfull", 60)
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, 64 * KIB)
        self.assert_file(os.path.join(self.job_dir("dfull"), "big.bin"),
                         body(64 * KIB, 3))

    @no_daemon
    @config(http={"retries": 2})
    def test_retries_run_out_with_a_clear_error(self):
        filler = self.mount_dl()
        self.fill(filler)
        self.drop_job("dfail", [self.url("a.bin", size=64 * KIB),
                                self.url("b.bin", size=64 * KIB, seed=1)])
        state, rows = self.wait_done("dfail", 60)
        self.assertEqual(state, "failed")
        for r in rows:
            self.assert_row(r, "failed", None, 0, 3)
            self.assertIn("No space left", r.error_text)
        self.assertTrue(self.daemon.running())
        os.unlink(filler)
        self.assert_no_parts("dfail")
        # The daemon goes on: the next job, with space, is done.
        self.drop_job("after", [self.url("c.bin", size=3000, seed=2)])
        state, rows = self.wait_done("after", 30)
        self.assertEqual(state, "done")


    @no_daemon
    def test_no_inode_for_a_directory_makes_the_job_wait(self):
        """out=sub/x.bin on a download dir out of inodes: the directory
        cannot be made (ENOSPC), the job waits instead of failing the
        URL, and completes once inodes are free again."""
        self.mount_tmpfs(self.daemon.dl, options=",nr_inodes=64")
        self.daemon.start()
        os.mkdir(self.job_dir("inodes"))
        self.jobs.add("inodes")
        fillers = []
        for i in range(200):
            p = os.path.join(self.daemon.dl, "f%03d" % i)
            try:
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o600))
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
                break
            fillers.append(p)
        self.drop_job("inodes", [self.url("x.bin", size=3000, seed=4) +
                                 "  out=sub/x.bin"])
        self.wait_waiting("inodes", "No space left")
        self.assertIsNone(self.daemon.finished("inodes"))
        for p in fillers:
            os.unlink(p)
        state, rows = self.wait_done("inodes", 90)
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, 3000, None, "sub/x.bin")
        self.assert_file(os.path.join(self.job_dir("inodes"), "sub",
                                      "x.bin"), body(3000, 4))


class TestReadOnlyDownloadDir(FaultCase):

    @no_daemon
    @config(http={"retries": 1})
    def test_every_url_fails_and_the_daemon_goes_on(self):
        self.mount_tmpfs(self.daemon.dl)
        subprocess.run(["mount", "-o", "remount,ro", self.daemon.dl],
                       check=True)
        self.daemon.start()
        self.drop_job("ro", [self.url("a.bin"), self.url("b.bin", seed=1)])
        state, rows = self.wait_done("ro", 30)
        self.assertEqual(state, "failed")
        self.assertEqual(len(rows), 2)
        for r in rows:
            self.assert_row(r, "failed")
            self.assertIn("Read-only file system", r.error_text)
        self.assertTrue(self.daemon.running())
        self.assertEqual(self.stats()["jobs"]["failed"], 1)
        subprocess.run(["mount", "-o", "remount,rw", self.daemon.dl],
                       check=True)
        self.drop_job("rw", [self.url("c.bin", size=3000, seed=2)])
        state, rows = self.wait_done("rw", 30)
        self.assertEqual(state, "done")


class TestSyncErrors(FaultCase):
    """EIO from syncfs and fsync, through tests/faultshim.c: the fault
    holds while the flag file exists."""

    def preload(self, prefix):
        shim = faultshim()
        if shim is None:
            self.skipTest("tests/faultshim.so is not built")
        flag = os.path.join(self.tmp, "fault.on")
        open(flag, "w").close()
        self.daemon.env = {"LD_PRELOAD": shim,
                           "FETCHD_FAULT_FSYNC": prefix,
                           "FETCHD_FAULT_FLAG": flag}
        return flag

    def assert_held(self, name, text):
        self.wait_waiting(name, text)
        self.assert_waiting_shown(name, text)
        self.assertTrue(still_for(
            lambda: self.daemon.finished(name) is None and
            os.path.exists(self.daemon.spool_path("active", name)), 2),
            "job %s left active/ while the fault held:\n%s"
            % (name, self.daemon.spool_listing()))
        self.assertEqual(self.stats()["jobs"]["done"], 0)

    @no_daemon
    @config(daemon={"sync": "yes"})
    def test_syncfs_eio_keeps_the_job_out_of_done(self):
        """done/ promises durable files: with EIO from syncfs the job
        stays in active/, waiting, and is finished once syncfs works."""
        flag = self.preload(self.daemon.dl)
        self.daemon.start()
        keys = ["y0", "y1"]
        self.drop_job("sy", [self.url("y%d.bin" % i, size=4000, seed=i,
                                      key=k) for i, k in enumerate(keys)])
        self.assert_held("sy", "syncfs")
        os.unlink(flag)
        state, rows = self.wait_done("sy", 30)
        self.assertEqual(state, "done")
        for r in rows:
            self.assert_row(r, "ok", 200, 4000)
        self.fetched_once(keys)

    @no_daemon
    def test_spool_fsync_eio_holds_the_hand_off(self):
        """EIO from the fsync of active/J.result: the hand-off to done/ is
        not taken as done; the job waits in active/ and goes on after."""
        flag = self.preload(self.daemon.spool_path("active", "sf.result"))
        self.daemon.start()
        self.drop_job("sf", [self.url("f.bin", size=4000, key="f")])
        self.assert_held("sf", "Input/output error")
        os.unlink(flag)
        state, rows = self.wait_done("sf", 30)
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, 4000)
        self.fetched_once(["f"])
        jnl = self.daemon.spool_path("active", "sf.journal")
        wait_for(lambda: not os.path.exists(jnl), 10,
                 "the journal to go", self.daemon.spool_listing)


class TestLowFileLimit(FaultCase):
    """Hole 5: with RLIMIT_NOFILE 40 and workers.count 16, each engine
    lowers its count (with a log line) and every URL is fetched."""

    LIMIT = 40
    N = 150

    def run_engine(self, model):
        self.daemon.settings["workers"].update(model=model, count=16)
        self.daemon.write_config()
        self.daemon.rlimit_nofile = self.LIMIT
        self.daemon.start()
        urls = [self.url("n%d.bin" % i, size=700, seed=i % 200)
                for i in range(self.N)]
        self.drop_job("nofile", urls)
        state, rows = self.wait_done("nofile", 120)
        bad = [r for r in rows if r.outcome != "ok"]
        self.assertEqual(bad, [], "%d of %d URLs failed, e.g. %r" % (
            len(bad), self.N, bad[:1]))
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), self.N)
        self.assertRegex(self.daemon.log_text(),
                         r"%s engine: the open file limit \(%d\) caps "
                         r"workers.count at \d+ instead of 16"
                         % (model, self.LIMIT))

    @no_daemon
    def test_threads(self):
        self.run_engine("threads")

    @no_daemon
    def test_event(self):
        self.run_engine("event")

    @no_daemon
    def test_process(self):
        self.run_engine("process")

    @no_daemon
    def test_reload_to_a_bigger_count_fits_again(self):
        """A reload that switches engines fits the new one too."""
        self.daemon.settings["workers"].update(model="event", count=2)
        self.daemon.write_config()
        self.daemon.rlimit_nofile = self.LIMIT
        self.daemon.start()
        self.daemon.settings["workers"].update(model="threads", count=16)
        self.daemon.write_config()
        self.ctl("reload")
        wait_for(lambda: "threads engine: the open file limit" in
                 self.daemon.log_text(), 10, "the fit of the new engine",
                 self.daemon.log_tail)
        urls = [self.url("m%d.bin" % i, size=700, seed=i % 200)
                for i in range(self.N)]
        self.drop_job("switched", urls)
        state, rows = self.wait_done("switched", 120)
        self.assertEqual([r for r in rows if r.outcome != "ok"], [])
        self.assertEqual(state, "done")


class TestAllocationFailure(FaultCase):
    """One allocation fails at a time (tests/faultshim.c), counted from the
    moment the job is dropped: the daemon does not crash, the job ends in
    done/ or failed/, and fetchd stops cleanly (exit status 0)."""

    FIRST = int(os.environ.get("FETCHD_FAULT_MALLOC_FIRST") or 1)
    LAST = int(os.environ.get("FETCHD_FAULT_MALLOC_LAST") or 60)

    @no_daemon
    def test_one_failed_allocation_at_a_time(self):
        shim = faultshim()
        if shim is None:
            self.skipTest("tests/faultshim.so is not built")
        with open(ft.FETCHD, "rb") as f:
            if b"__asan_init" in f.read():
                self.skipTest("fetchd is built with ASan, whose allocator "
                              "a preloaded one cannot replace")
        failures = []
        for n in range(self.FIRST, self.LAST + 1):
            try:
                self.one_failed_allocation(shim, n)
            except AssertionError as e:
                failures.append("allocation %d: %s" % (n, e))
            finally:
                self.daemon.kill9()
        self.assertEqual(failures, [], "\n".join(failures))

    def one_failed_allocation(self, shim, n):
        flag = os.path.join(self.tmp, "fault.on")
        if os.path.exists(flag):
            os.unlink(flag)
        self.daemon.env = {"LD_PRELOAD": shim,
                           "FETCHD_FAULT_MALLOC_AFTER": str(n),
                           "FETCHD_FAULT_FLAG": flag}
        self.daemon.start()
        open(flag, "w").close()
        name = "m%d" % n
        self.drop_job(name, [self.url("m.bin", size=3000, seed=n),
                             self.url("n.bin", size=200, seed=n)])
        state, rows = self.wait_done(name, 15)
        self.assertIn(state, ("done", "failed"))
        rc = self.daemon.stop()
        self.assertEqual(rc, 0, "exit status %s:\n%s"
                         % (rc, self.daemon.log_tail()))


if __name__ == "__main__":
    ft.main()
