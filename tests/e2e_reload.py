#!/usr/bin/env python3
"""
e2e_reload.py: what a reload applies and what waits for a restart, per_host
followed by a reload, and how soon jobs are claimed at start.

    FETCHD=src/fetchd FETCHCTL=src/fetchctl python3 tests/e2e_reload.py -v

Covered:
  - a reload that changes restart-only options keeps their running values
    and names them (the JSON reply's restart_needed, fetchctl's text, the
    log); a changed live option takes effect;
  - under the event model, per_host raised by SIGHUP lets more transfers to
    one host run at once (the server counts concurrent requests);
  - under each model, a job renamed into new/ before start, and one renamed
    in while the daemon starts, are claimed within CLAIM_BOUND of the
    daemon answering `ping`;
  - a job written in place into new/ by a writer that pauses mid-line is
    not taken until the writer closes it, and then whole.

CLAIM_BOUND (50 ms) scales with FETCHD_E2E_TIMEOUT_SCALE like every other
deadline; on this kind of machine the measured latency is a few ms, or
negative (the claim happens before the first ping is answered).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from e2e_control import read_line  # noqa: E402
from fetchdtest import FetchdTestCase, body, no_daemon  # noqa: E402

CLAIM_BOUND = 0.050 * ft.SCALE  # s from readiness to the claim
SLOW_MS = 1500                  # delay of each "slow" URL


def ping(path, timeout):
    """True when fetchd answers ping on the socket at path."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(b"ping\n")
        return json.loads(read_line(s, timeout)).get("pong") is True
    except (OSError, ValueError):
        return False
    finally:
        s.close()


class TestReloadTable(FetchdTestCase):
    """Restart-only options keep their values; live ones are taken."""

    def setUp(self):
        if not ft.FETCHCTL:
            raise unittest.SkipTest("FETCHCTL is not set")
        super().setUp()

    def ctl(self, *args):
        p = subprocess.run([ft.FETCHCTL, "-s", self.daemon.socket] +
                           list(args), capture_output=True,
                           timeout=30 * ft.SCALE)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode()

    def test_restart_only_kept_live_taken(self):
        sock = self.daemon.socket
        mode = os.stat(sock).st_mode & 0o7777
        moved = os.path.join(self.tmp, "moved.sock")
        self.daemon.settings["daemon"]["socket"] = moved
        self.daemon.settings["daemon"]["socket_mode"] = "0600"
        self.daemon.settings["http"]["max_file_size"] = "1K"
        self.daemon.write_config()
        mark = len(self.daemon.log_text())

        reply = json.loads(self.ctl("--json", "reload"))
        self.assertIs(reply.get("reloaded"), True, reply)
        self.assertEqual(sorted(reply.get("restart_needed", [])),
                         ["daemon.socket", "daemon.socket_mode"], reply)
        # The running values stay: the old socket, its mode, no new one.
        self.assertTrue(ping(sock, 5 * ft.SCALE))
        self.assertEqual(os.stat(sock).st_mode & 0o7777, mode)
        self.assertFalse(os.path.exists(moved))
        log = self.daemon.log_text(mark)
        for name in ("daemon.socket", "daemon.socket_mode"):
            self.assertIn("reload: %s changed; it takes effect at the next "
                          "start" % name, log)
        self.assertNotIn("max_file_size changed", log)
        # The live one applies: a 2 KiB file is now too large.
        self.drop_job("big", [self.url("big.bin", size=2048)])
        state, rows = self.wait_done("big")
        self.assertEqual(state, "failed")
        self.assertEqual(rows[0].outcome, "failed", rows)
        self.assertIn("max_file_size", rows[0].error, rows)

        # fetchctl's own words, and the same names again (still changed).
        out = self.ctl("reload")
        self.assertIn("configuration reloaded", out)
        self.assertIn("not applied until fetchd restarts", out)
        self.assertIn("daemon.socket, daemon.socket_mode", out)

        # Back to the running values: nothing to name.
        self.daemon.settings["daemon"]["socket"] = sock
        self.daemon.settings["daemon"]["socket_mode"] = "%04o" % mode
        self.daemon.write_config()
        reply = json.loads(self.ctl("--json", "reload"))
        self.assertEqual(reply.get("restart_needed"), [], reply)

    def test_sighup_names_restart_option(self):
        self.daemon.settings["daemon"]["download_dir"] = os.path.join(
            self.tmp, "dl-other")
        self.daemon.write_config()
        mark = len(self.daemon.log_text())
        os.kill(self.daemon.pid, signal.SIGHUP)
        ft.wait_for(lambda: "configuration reloaded"
                    in self.daemon.log_text(mark), 10, "the reload")
        self.assertIn("reload: daemon.download_dir changed; it takes effect "
                      "at the next start", self.daemon.log_text(mark))
        # Files still go to the running download_dir.
        self.drop_job("j", [self.url("a.bin", size=300)])
        self.assertEqual(self.wait_done("j")[0], "done")
        self.assert_file(os.path.join(self.job_dir("j"), "a.bin"), body(300))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "dl-other")))


class TestPerHostReload(FetchdTestCase):
    """per_host has one owner, the scheduler, and follows a reload."""

    settings = {"workers": {"model": "event", "count": 8, "per_host": 2}}

    def slow_urls(self, prefix, n):
        return [self.url("%s%d.bin" % (prefix, i), size=100 + i,
                         delay=SLOW_MS, key="%s%d" % (prefix, i))
                for i in range(n)]

    def test_raised_per_host_applies(self):
        srv = self.server
        self.drop_job("one", self.slow_urls("a", 6))
        # Two rounds of slow requests: never more than 2 at once.
        srv.wait_requests("a1", 1, 20)
        ft.wait_for(lambda: sum(len(srv.requests_for("a%d" % i))
                                for i in range(6)) >= 4, 20,
                    "two rounds of requests")
        self.assertEqual(srv.concurrency()[1], 2,
                         "per_host = 2 allows 2 requests at once")

        self.daemon.settings["workers"]["per_host"] = 6
        self.daemon.write_config()
        mark = len(self.daemon.log_text())
        os.kill(self.daemon.pid, signal.SIGHUP)
        ft.wait_for(lambda: "configuration reloaded"
                    in self.daemon.log_text(mark), 10, "the reload")
        srv.concurrency(reset=True)
        self.drop_job("two", self.slow_urls("b", 8))
        peak = ft.wait_for(
            lambda: (lambda m: m if m > 2 else None)(srv.concurrency()[1]),
            15, "more than 2 requests at once after per_host = 6",
            lambda: "concurrency %r\n%s" % (srv.concurrency(),
                                            self.daemon.log_tail()))
        self.assertLessEqual(peak, 6)
        for job in ("one", "two"):
            state, rows = self.wait_done(job, 30)
            self.assertEqual(state, "done", rows)
        self.assertLessEqual(srv.concurrency()[1], 6)


class StartupCase:
    """Jobs that reach new/ before or during start are claimed at once."""

    @no_daemon
    def test_claimed_at_start(self):
        self.measure()

    def claimed(self, name):
        return any(os.path.lexists(self.daemon.spool_path(d, name))
                   for d in ("active", "done"))

    def measure(self):
        for sub in ft.SPOOL_DIRS:
            os.makedirs(self.daemon.spool_path(sub), exist_ok=True)
        self.drop_job("before", [self.url("before.bin", size=500)])
        offset = self.daemon.launch()
        self.jobs.add("during")
        self.daemon.drop_job("during", [self.url("during.bin", size=600)])
        early = os.path.exists(self.daemon.socket)
        seen, ready = {}, None
        end = time.monotonic() + 20 * ft.SCALE
        while (ready is None or len(seen) < 2) and time.monotonic() < end:
            for name in ("before", "during"):
                if name not in seen and self.claimed(name):
                    seen[name] = time.monotonic()
            if ready is None and os.path.exists(self.daemon.socket) and \
                    ping(self.daemon.socket, 5 * ft.SCALE):
                ready = time.monotonic()
            if not self.daemon.running():
                self.fail("fetchd exited:\n" + self.daemon.log_tail())
            time.sleep(0.001)
        self.assertIsNotNone(ready, "fetchd never answered ping")
        self.daemon.wait_ready(offset)
        lat = {n: seen[n] - ready for n in seen}
        sys.stderr.write("\n%s: claim - ready: %s (socket there at the "
                         "second rename: %s)\n" % (
                             self.model,
                             ", ".join("%s %+.1f ms" % (n, v * 1000)
                                       for n, v in sorted(lat.items())),
                             early))
        for name in ("before", "during"):
            self.assertIn(name, seen, "job %s not claimed within 20 s:\n%s"
                          % (name, self.daemon.log_tail()))
            self.assertLessEqual(lat[name], CLAIM_BOUND,
                                 "job %s claimed %.1f ms after readiness" %
                                 (name, lat[name] * 1000))
        for name, size in (("before", 500), ("during", 600)):
            state, rows = self.wait_done(name)
            self.assertEqual(state, "done", rows)
            self.assert_row(rows[0], "ok", 200, size)


class TestStartupEvent(StartupCase, FetchdTestCase):
    model = "event"
    settings = {"workers": {"model": "event", "count": 8}}


class TestStartupThreads(StartupCase, FetchdTestCase):
    model = "threads"
    settings = {"workers": {"model": "threads", "count": 8}}


class TestStartupProcess(StartupCase, FetchdTestCase):
    model = "process"
    settings = {"workers": {"model": "process", "count": 8}}


class TestWriterInPlace(FetchdTestCase):
    """A job copied straight into new/ is taken when its writer closes it,
    even when the writer pauses longer than the rescans' age rule."""

    settings = {"daemon": {"rescan_interval": 1}}

    def paused_writer(self, name, mid_line):
        urls = [self.url("w%d.bin" % i, size=700 + i, seed=i)
                for i in range(6)]
        text = "".join(u + "\n" for u in urls)
        cut = text.index(urls[3])
        if mid_line:
            cut += len(urls[3]) // 2
        path = self.daemon.spool_path("new", name)
        self.jobs.add(name)
        with open(path, "w") as f:
            f.write(text[:cut])
            f.flush()
            # 3 s: two rescans see a file 2 s old and more.
            end = time.monotonic() + 3
            while time.monotonic() < end:
                self.assertTrue(os.path.exists(path),
                                "taken while its writer had it open:\n%s"
                                % self.daemon.log_tail())
                time.sleep(ft.POLL)
            f.write(text[cut:])
        state, rows = self.wait_done(name)
        self.assertEqual(state, "done", rows)
        self.assertEqual([r.url for r in rows], urls)
        for i, row in enumerate(rows):
            self.assert_row(row, "ok", 200, 700 + i)

    def test_paused_writer_mid_line(self):
        self.paused_writer("inplace", True)

    def test_paused_writer_between_lines(self):
        """The part written so far is a valid job on its own: only the
        open file tells it is not complete."""
        self.paused_writer("inplace2", False)

if __name__ == "__main__":
    ft.main()
