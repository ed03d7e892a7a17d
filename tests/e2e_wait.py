#!/usr/bin/env python3
"""
e2e_wait.py: end-to-end tests of what a producer uses to follow its jobs:
fetchctl submit --wait, wait, events and jobs JOB, against the real fetchd
(FETCHD, on the engine FETCHD_MODEL names) fetching from tests/httpd.py.

    FETCHD=src/fetchd FETCHCTL=src/fetchctl python3 tests/e2e_wait.py -v

Covered: submit --wait ends with 0 for a job that ends in done/ and 6 for
one that ends in failed/, naming the result file, and submits nothing
without a daemon; a wait survives a restart of the daemon in the middle
of its job; a wait on a job that ended returns at once; several jobs (one
named twice) on one connection; --timeout (7) and an unknown job (1); the
progress line redrawn on a terminal, ^C leaving the cursor on a fresh
line, and plain lines otherwise; events --json, events --job and events
ending with the daemon (3); jobs JOB for people and in JSON, for an active
job and for one that ended (its result file read).
"""

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, wait_for  # noqa: E402

FETCHCTL = ft.FETCHCTL
# fetchctl's exit statuses (proto.h, enum proto_exit)
OK, ERROR, USAGE, NOT_RUNNING, FAILED, TIMEOUT = 0, 1, 2, 3, 6, 7
ESC = "\033"


class WaitTestCase(FetchdTestCase):
    """FetchdTestCase plus fetchctl, run to its end or in the background."""

    # A stop aborts what is running (it is resumed at the next start), so
    # a restart in the middle of a job is quick.
    settings = {"daemon": {"shutdown_grace": 0}}

    def setUp(self):
        if not FETCHCTL:
            raise unittest.SkipTest("FETCHCTL is not set")
        super().setUp()
        self.procs = []
        self.addCleanup(self._stop_procs)

    def _stop_procs(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()

    def argv(self, *args):
        return [FETCHCTL, "-s", self.daemon.socket, "-c", self.daemon.conf] \
            + list(args)

    def ctl(self, *args, timeout=30):
        """Run fetchctl; (status, stdout, stderr) as text."""
        env = dict(os.environ)
        env.pop("FETCHD_SOCKET", None)
        p = subprocess.run(self.argv(*args), capture_output=True, env=env,
                           stdin=subprocess.DEVNULL,
                           timeout=timeout * ft.SCALE)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def spawn(self, *args, stdout=subprocess.PIPE):
        """fetchctl in the background, killed at cleanup if still running."""
        p = subprocess.Popen(self.argv(*args), stdout=stdout,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def finish(self, p, timeout=30):
        """Wait for p; (status, stdout, stderr) as text."""
        try:
            out, err = p.communicate(timeout=timeout * ft.SCALE)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            self.fail("fetchctl did not end within %d s:\n%s\n%s\n%s" % (
                timeout, out, err, self.daemon.log_tail()))
        return (p.returncode, (out or b"").decode("utf-8", "replace"),
                err.decode("utf-8", "replace"))

    def job_file(self, name, urls):
        path = os.path.join(self.tmp, name + ".txt")
        with open(path, "w") as f:
            f.write("".join(u + "\n" for u in urls))
        return path

    def slow_url(self, name, seconds=3, size=60000):
        """A URL whose body takes about seconds to arrive."""
        return self.url(name, size=size, drip=max(1, size // seconds))

    def result_line(self, out, name):
        """The "JOB STATE RESULT" line of name in out: (state, path)."""
        for line in out.splitlines():
            w = line.split(" ")
            if len(w) == 3 and w[0] == name:
                return w[1], w[2]
        self.fail("no result line for %s in:\n%s" % (name, out))

    def first_line(self, p, timeout=10):
        """The first line of p's stdout (read byte by byte: the rest is
        left for communicate())."""
        line = b""
        end = time.monotonic() + timeout * ft.SCALE
        while not line.endswith(b"\n"):
            left = end - time.monotonic()
            self.assertGreater(left, 0, "no line from fetchctl: %r" % line)
            r, _, _ = select.select([p.stdout], [], [], left)
            if r:
                c = os.read(p.stdout.fileno(), 1)
                self.assertTrue(c, "fetchctl ended: %r" % line)
                line += c
        return line.decode()

    def read_pty(self, master, out=b"", idle=20):
        """out and what the pty master gives until fetchctl closed the
        terminal (EIO) or nothing came for idle seconds."""
        while select.select([master], [], [], idle * ft.SCALE)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:             # EIO: fetchctl exited
                break
            if not chunk:
                break
            out += chunk
        return out

    def wait_active(self, name):
        wait_for(lambda: os.path.exists(self.daemon.spool_path("active",
                                                                 name)),
                 10, "job %s to be claimed" % name, self.daemon.log_tail)


class TestWait(WaitTestCase):
    """submit --wait and wait: statuses, result lines, restarts."""

    def test_submit_wait_done(self):
        self.jobs.add("good")
        path = self.job_file("good", [self.url("a.bin", size=1000),
                                      self.url("b.bin", size=2000)])
        rc, out, err = self.ctl("submit", "--name", "good", "--wait", path)
        self.assertEqual(rc, OK, out + err)
        self.assertEqual(out.splitlines()[0], "good")
        state, result = self.result_line(out, "good")
        self.assertEqual(state, "done")
        self.assertEqual(result, self.daemon.spool_path("done",
                                                        "good.result"))
        rows = ft.parse_result(result)
        self.assertEqual([r.outcome for r in rows], ["ok", "ok"])
        self.assertEqual(out.splitlines()[-1], "good done " + result)

    def test_submit_wait_failed(self):
        self.jobs.add("bad")
        path = self.job_file("bad", [self.url("ok.bin", size=100),
                                     self.url("gone.bin", status=404)])
        rc, out, err = self.ctl("submit", "--name", "bad", "--wait",
                                "--timeout", "30", path)
        self.assertEqual(rc, FAILED, out + err)
        state, result = self.result_line(out, "bad")
        self.assertEqual(state, "failed")
        self.assertEqual(result, self.daemon.spool_path("failed",
                                                        "bad.result"))
        self.assertTrue(os.path.exists(result))

    def test_wait_survives_a_restart(self):
        self.drop_job("long", [self.slow_url("l1.bin", 2),
                               self.slow_url("l2.bin", 2)])
        p = self.spawn("wait", "long")
        first = self.first_line(p)      # fetchctl has the snapshot
        self.assertRegex(first, r"^\d\d:\d\d:\d\d long ")
        self.wait_active("long")
        self.wait_file_size(os.path.join(self.job_dir("long"), "l1.bin.part"))
        self.daemon.stop()
        self.assertIsNone(p.poll(), "wait ended with the daemon")
        time.sleep(0.3)         # the wait is left without a daemon a while
        self.daemon.start()
        rc, out, err = self.finish(p)
        self.assertEqual(rc, OK, out + err)
        self.assertEqual(err.count("lost the connection"), 1, err)
        state, result = self.result_line(out, "long")
        self.assertEqual(state, "done")
        self.assertEqual(result, self.daemon.spool_path("done",
                                                        "long.result"))
        self.assertEqual(self.wait_done("long")[0], "done")

    def test_wait_on_an_ended_job_returns_at_once(self):
        self.drop_job("early", [self.url("e.bin", size=10)])
        self.wait_done("early")
        t = time.monotonic()
        rc, out, err = self.ctl("wait", "early")
        self.assertLess(time.monotonic() - t, 3 * ft.SCALE)
        self.assertEqual(rc, OK, out + err)
        self.assertEqual(out.splitlines()[-1], "early done " +
                         self.daemon.spool_path("done", "early.result"))

    def test_timeout_and_unknown_job(self):
        self.drop_job("stuck", [self.url("h.bin", hang=1)])
        self.wait_active("stuck")
        t = time.monotonic()
        rc, out, err = self.ctl("wait", "--timeout", "0.5", "stuck")
        took = time.monotonic() - t
        self.assertEqual(rc, TIMEOUT, out + err)
        self.assertGreaterEqual(took, 0.5)
        self.assertLess(took, 5 * ft.SCALE)
        self.assertIn("timed out", err)
        self.assertIn("stuck", err)
        rc, out, err = self.ctl("wait", "no-such-job")
        self.assertEqual(rc, ERROR, out + err)
        self.assertIn("no such job: no-such-job", err)
        for bad in ("0", "-1", "x", "1e3", ""):
            rc, _, err = self.ctl("wait", "--timeout", bad, "stuck")
            self.assertEqual(rc, USAGE, "--timeout %r: %s" % (bad, err))
        self.ctl("cancel", "stuck")
        self.assertEqual(self.wait_done("stuck")[0], "failed")

    def test_several_jobs_on_one_connection(self):
        self.drop_job("one", [self.url("1.bin", size=10)])
        self.drop_job("two", [self.url("2.bin", status=500)])
        self.drop_job("three", [self.slow_url("3.bin", 1, 5000)])
        rc, out, err = self.ctl("wait", "one", "two", "three", "one")
        self.assertEqual(rc, FAILED, out + err)
        self.assertEqual(len([x for x in out.splitlines()
                              if x.startswith("one done ")]), 1, out)
        self.assertEqual(self.result_line(out, "one")[0], "done")
        self.assertEqual(self.result_line(out, "two")[0], "failed")
        self.assertEqual(self.result_line(out, "three")[0], "done")

    def test_daemon_not_running(self):
        self.daemon.stop()
        rc, out, err = self.ctl("wait", "x")
        self.assertEqual(rc, NOT_RUNNING, err)
        path = self.job_file("never", [self.url("n.bin")])
        rc, out, err = self.ctl("submit", "--wait", path)
        self.assertEqual(rc, NOT_RUNNING, err)
        self.assertEqual(os.listdir(self.daemon.spool_path("new")), [],
                         "submit --wait submitted without a daemon")


class TestOutput(WaitTestCase):
    """The progress line on a terminal, plain lines otherwise."""

    def test_progress_line_on_a_terminal(self):
        self.drop_job("tty", [self.slow_url("t%d.bin" % i, 2, 20000)
                              for i in range(3)])
        master, slave = pty.openpty()
        p = self.spawn("wait", "tty", stdout=slave)
        os.close(slave)
        try:
            out = self.read_pty(master)
        finally:
            os.close(master)
        rc, _, err = self.finish(p)
        self.assertEqual(rc, OK, err)
        text = out.decode("utf-8", "replace")
        # Redrawn in place: carriage return, erase line, cursor up.
        self.assertIn("\r" + ESC + "[K", text)
        self.assertIn(ESC + "[1A", text)
        self.assertRegex(text, r"tty \[[= >]+\] \d/\d/3 ")
        self.assertRegex(text, r"ETA (\d+s|--)")
        self.assertRegex(text, r"tty \[=+\] 3/0/3 .* done")
        self.assertIn("tty done " + self.daemon.spool_path("done",
                                                           "tty.result"),
                      text)
        # No line reaches the last column (80 on a pty without a size).
        for line in re.split(r"\r|\n|" + ESC + r"\[\d*[AKJ]", text):
            self.assertLess(len(line), 80, line)

    def test_interrupt_leaves_a_fresh_line(self):
        self.drop_job("hang", [self.url("h.bin", hang=1)])
        master, slave = pty.openpty()
        p = self.spawn("wait", "hang", stdout=slave)
        os.close(slave)
        out = b""
        try:
            end = time.monotonic() + 10 * ft.SCALE
            while b"hang [" not in out:         # the job's bar is drawn
                self.assertLess(time.monotonic(), end, repr(out))
                r, _, _ = select.select([master], [], [], 0.5)
                if r:
                    out += os.read(master, 65536)
            p.send_signal(signal.SIGINT)
            rc, _, err = self.finish(p)
            out = self.read_pty(master, out, idle=0.2)
        finally:
            os.close(master)
        self.assertEqual(rc, -signal.SIGINT, err)   # died of it
        self.assertTrue(out.endswith(b"\r\n"), repr(out[-80:]))
        self.ctl("cancel", "hang")
        self.wait_done("hang")

    def test_plain_lines_otherwise(self):
        self.drop_job("plain", [self.url("p1.bin", size=100),
                                self.slow_url("p2.bin", 1, 5000)])
        rc, out, err = self.ctl("wait", "plain")
        self.assertEqual(rc, OK, out + err)
        self.assertNotIn(ESC, out)
        self.assertNotIn("\r", out)
        lines = out.splitlines()
        stamped = [x for x in lines if re.match(r"\d\d:\d\d:\d\d plain ",
                                                 x)]
        self.assertTrue(stamped, out)
        self.assertRegex(stamped[-1], r"plain done: 2 done, 0 failed of 2 "
                         r"URLs, .*; result /.*/done/plain.result$")
        self.assertEqual(lines[-1], "plain done " +
                         self.daemon.spool_path("done", "plain.result"))


class TestEvents(WaitTestCase):
    """fetchctl events, all of them or a job's."""

    def read_lines(self, p, until, timeout=20):
        """Lines of p's stdout until until(line) is true (that one too)."""
        lines, buf = [], b""
        end = time.monotonic() + timeout * ft.SCALE
        while True:
            left = end - time.monotonic()
            self.assertGreater(left, 0, "got %r" % lines)
            r, _, _ = select.select([p.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            self.assertTrue(chunk, "events ended: %r" % lines)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.append(line.decode())
                if until(lines[-1]):
                    return lines

    def test_events_json(self):
        p = self.spawn("--json", "events")
        first = self.read_lines(p, lambda x: True)
        self.assertEqual(json.loads(first[0])["event"], "subscribed")
        self.drop_job("ev", [self.url("ev1.bin", size=300),
                             self.url("ev2.bin", status=404)])
        lines = self.read_lines(
            p, lambda x: json.loads(x).get("event") == "job_done" and
            json.loads(x).get("job") == "ev")
        evs = [json.loads(x) for x in lines]
        mine = [e for e in evs if e.get("job") == "ev"]
        kinds = [e["event"] for e in mine]
        self.assertEqual(kinds[0], "job_queued")
        self.assertEqual(kinds[1], "job_claimed")
        self.assertEqual(sorted(kinds[2:4]), ["url_done", "url_done"])
        self.assertEqual(kinds[-1], "job_done")
        seqs = [e["seq"] for e in mine]
        self.assertEqual(seqs, sorted(seqs))
        done = {e["index"]: e for e in mine if e["event"] == "url_done"}
        self.assertEqual(done[0]["outcome"], "ok")
        self.assertEqual(done[0]["bytes"], 300)
        self.assertEqual(done[1]["outcome"], "failed")
        self.assertEqual(done[1]["status"], 404)
        self.assertEqual(mine[-1]["state"], "failed")
        self.assertEqual(mine[-1]["result"],
                         self.daemon.spool_path("failed", "ev.result"))
        for e in evs:
            self.assertEqual(e["proto"], 1)
        p.send_signal(signal.SIGINT)
        rc, _, err = self.finish(p)
        self.assertEqual(rc, OK, err)

    def test_events_job_ends_with_the_job(self):
        p = self.spawn("events", "--job", "mine")
        self.read_lines(p, lambda x: "mine" in x)   # the snapshot
        self.drop_job("other", [self.url("o.bin", size=10)])
        self.drop_job("mine", [self.url("m.bin", size=10)])
        rc, out, err = self.finish(p)
        self.assertEqual(rc, OK, out + err)
        self.assertNotIn("other", out)
        self.assertNotIn(ESC, out)
        self.assertIn("m.bin", out)     # the url_done line names its URL
        # A job that failed: 6, also when it had ended before.
        self.drop_job("sad", [self.url("s.bin", status=410)])
        self.wait_done("sad")
        rc, out, err = self.ctl("events", "--job", "sad")
        self.assertEqual(rc, FAILED, out + err)
        rc, out, err = self.ctl("--json", "events", "--job", "mine")
        self.assertEqual(rc, OK, out + err)
        self.assertEqual(json.loads(out.splitlines()[0])["state"], "done")

    def test_events_end_with_the_daemon(self):
        p = self.spawn("events")
        self.read_lines(p, lambda x: True)
        self.daemon.stop()
        rc, out, err = self.finish(p)
        self.assertEqual(rc, NOT_RUNNING, out + err)


class TestJobDetail(WaitTestCase):
    """fetchctl jobs JOB."""

    def test_active_job(self):
        self.drop_job("act", [self.url("a1.bin", size=10),
                              self.url("a2.bin", hang=1)])
        self.wait_active("act")

        def detail():
            rc, out, err = self.ctl("--json", "jobs", "act")
            self.assertEqual(rc, OK, err)
            j = json.loads(out)["job"]
            return j if j.get("done") == 1 else None
        j = wait_for(detail, 10, "a1.bin to be done")
        self.assertEqual(j["name"], "act")
        self.assertEqual(j["state"], "running")
        self.assertEqual(j["urls"], 2)
        self.assertEqual(j["running"], 1)
        rc, out, err = self.ctl("jobs", "act")
        self.assertEqual(rc, OK, err)
        self.assertRegex(out, r"(?m)^job +act$")
        self.assertRegex(out, r"(?m)^state +running$")
        self.assertRegex(out, r"(?m)^urls +2: 1 done, 0 failed, 1 running")
        self.assertIn("ETA", out)
        self.ctl("cancel", "act")
        self.wait_done("act")

    def test_ended_job_and_its_result_file(self):
        self.drop_job("end", [self.url("e1.bin", size=2048),
                              self.url("e2.bin", status=404),
                              self.url("e3.bin", size=1024)])
        self.wait_done("end")
        rc, out, err = self.ctl("--json", "jobs", "end")
        self.assertEqual(rc, OK, err)
        j = json.loads(out)["job"]
        self.assertEqual((j["name"], j["state"]), ("end", "failed"))
        result = self.daemon.spool_path("failed", "end.result")
        self.assertEqual(j["result"], result)
        rc, out, err = self.ctl("jobs", "end")
        self.assertEqual(rc, OK, err)
        self.assertRegex(out, r"(?m)^state +failed$")
        self.assertRegex(out, r"(?m)^result +%s$" % re.escape(result))
        self.assertRegex(out, r"(?m)^urls +3: 2 ok, 1 failed$")
        self.assertRegex(out, r"(?m)^received +3\.0 KiB$")
        self.assertRegex(out, r"(?m)^  #1 http://.*/f/e2\.bin\?status=404: "
                         r"status 404, 1 attempt: HTTP 404$")
        rc, out, err = self.ctl("jobs", "nothing-here")
        self.assertEqual(rc, ERROR)
        self.assertIn("no such job: nothing-here", err)


if __name__ == "__main__":
    ft.main()
