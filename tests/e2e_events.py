#!/usr/bin/env python3
"""
e2e_events.py: end-to-end tests of the producer's side of the control
socket: the `events`, `events JOB` and `wait JOB` subscriptions and the
detail of `jobs JOB`. The real fetchd (FETCHD, the engine FETCHD_MODEL
names) fetches from tests/httpd.py on 127.0.0.1; the tests read the event
lines through a raw Unix-socket client, as a script would.

    FETCHD=src/fetchd FETCHD_MODEL=event python3 tests/e2e_events.py -v

Covered: every event of a job in order with the result's counts, seq
increasing; an entry of new/ refused at its claim; secrets out of the
URLs; one job's events after its snapshot; wait on a job that ended
(done, failed) and on one that runs (progress lines, then its end); a
claim that renames a job carries the subscriptions along; a subscriber
that never reads neither slows the downloads (the throughput with and
without it is printed) nor stays: it is dropped with a last `missed`
line; the subscription limit; `jobs JOB` for running, ended and unknown
jobs.
"""

import json
import os
import shutil
import socket
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, body, config, wait_for  # noqa: E402

SUBS_MAX = 256                  # control.h: CONTROL_SUBS_MAX
EVENTS_MAX = 1024 * 1024        # control.h: CONTROL_EVENTS_MAX
PUBLISHED = ("job_queued", "job_claimed", "url_done", "job_done")


class Client:
    """A raw connection to the control socket, reading event lines."""

    def __init__(self, path, rcvbuf=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(path)
        self.buf = b""
        self.eof = False

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def line(self, timeout=10):
        """The next line as an object; AssertionError at EOF or after
        timeout seconds."""
        end = time.monotonic() + timeout * ft.SCALE
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("no event line within %.1f s" % timeout)
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                self.eof = True
                raise AssertionError("EOF from fetchd")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        obj = json.loads(raw)
        assert obj.get("proto") == 1, raw
        return obj

    def until(self, pred, timeout=20):
        """Lines up to and including the first one pred() accepts."""
        out = []
        end = time.monotonic() + timeout * ft.SCALE
        while True:
            o = self.line(max(0.1, end - time.monotonic()))
            out.append(o)
            if pred(o):
                return out

    def rest(self, timeout=20):
        """Every line until the daemon closes the connection."""
        self.sock.settimeout(timeout * ft.SCALE)
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            self.buf += chunk
        lines, self.buf = self.buf.split(b"\n"), b""
        return [json.loads(x) for x in lines if x.strip()]

    def close(self):
        self.sock.close()


def is_done(job):
    return lambda o: o.get("event") == "job_done" and o.get("job") == job


class EventsTest(FetchdTestCase):
    """Per test a fresh fetchd; clients are closed at cleanup."""

    settings = {"workers": {"count": 8}, "http": {"retries": 0}}

    def client(self, *requests, rcvbuf=None):
        c = Client(self.daemon.socket, rcvbuf)
        self.addCleanup(c.close)
        for r in requests:
            c.send(r)
        return c

    def query(self, line):
        c = Client(self.daemon.socket)
        try:
            c.send(line)
            return c.line()
        finally:
            c.close()

    def result_path(self, state, job):
        return os.path.join(self.daemon.spool, state, job + ".result")

    def assert_seqs(self, lines):
        seqs = [o["seq"] for o in lines if o["event"] in PUBLISHED]
        self.assertEqual(seqs, sorted(set(seqs)), "seq not increasing")
        for o in lines:
            if o["event"] in PUBLISHED:
                self.assertIsInstance(o["time"], float, o)
                self.assertLess(abs(o["time"] - time.time()), 60, o)
            else:
                self.assertNotIn("seq", o)

    # -- events ------------------------------------------------------------

    def test_events_every_event_in_order(self):
        c = self.client("events")
        first = c.line()
        self.assertEqual(first["event"], "subscribed")
        self.assertIsInstance(first["seq"], int)
        sizes = [1000, 5000, 0]
        urls = [self.url("e%d" % i, size=n) for i, n in enumerate(sizes)]
        urls.append(self.url("missing", status=404))
        self.drop_job("e", urls)
        lines = c.until(is_done("e"))
        self.assert_seqs(lines)
        self.assertTrue(all(o["seq"] > first["seq"] for o in lines))
        kinds = [o["event"] for o in lines]
        self.assertEqual(kinds[:2], ["job_queued", "job_claimed"])
        self.assertEqual(kinds[2:], ["url_done"] * 4 + ["job_done"])
        self.assertEqual(lines[0]["job"], "e")
        self.assertEqual(lines[1]["job"], "e")
        self.assertIs(lines[1]["resumed"], False)
        self.assertNotIn("queued_as", lines[1])

        state, rows = self.wait_done("e")
        self.assertEqual(state, "failed")
        done = {o["index"]: o for o in lines if o["event"] == "url_done"}
        self.assertEqual(sorted(done), [0, 1, 2, 3])
        for i, row in enumerate(rows):
            o = done[i]
            self.assertEqual(o["url"], urls[i])
            self.assertEqual(o["outcome"], row.outcome)
            self.assertEqual(o["status"], row.status)
            self.assertEqual(o["bytes"], row.bytes)
            self.assertEqual(o["attempts"], row.attempts)
            self.assertEqual(o["path"], row.path)
            self.assertEqual(o["error"], row.error_text)
            self.assertNotIn("node", o)
        self.assertEqual([done[i]["outcome"] for i in range(4)],
                         ["ok", "ok", "ok", "failed"])
        self.assertEqual(done[3]["status"], 404)
        self.assertNotEqual(done[3]["error"], "")
        end = lines[-1]
        self.assertEqual(end["state"], "failed")
        self.assertEqual((end["urls"], end["done"], end["failed"]), (4, 3, 1))
        self.assertEqual(end["bytes"], sum(sizes))
        self.assertGreaterEqual(end["seconds"], 0)
        self.assertEqual(end["result"], self.result_path("failed", "e"))
        self.assertTrue(os.path.exists(end["result"]))

    def test_rejected_entry_ends_failed(self):
        c = self.client("events")
        c.line()
        os.symlink("/etc/passwd", self.daemon.spool_path("new", "lnk"))
        lines = c.until(is_done("lnk"))
        self.assertEqual([o["event"] for o in lines],
                         ["job_queued", "job_done"])
        end = lines[-1]
        self.assertEqual(end["state"], "failed")
        self.assertEqual((end["urls"], end["done"], end["failed"],
                          end["bytes"]), (0, 0, 0, 0))
        self.assertEqual(end["result"], self.result_path("failed", "lnk"))
        self.assertTrue(os.path.exists(end["result"]))

    def test_url_secrets_redacted(self):
        c = self.client("events")
        c.line()
        u = self.url("s", size=10).replace("http://", "http://me:pw@")
        self.drop_job("s", [u + "&token=abc&x=1&Signature=zz"])
        lines = c.until(is_done("s"))
        url = [o for o in lines if o["event"] == "url_done"][0]["url"]
        self.assertNotIn("me:pw", url)
        self.assertNotIn("abc", url)
        self.assertNotIn("zz", url)
        self.assertIn("token=REDACTED&x=1&Signature=REDACTED", url)

    def test_events_job_filters_after_snapshot(self):
        c = self.client("events f")
        snap = c.line()
        self.assertEqual(snap, {"proto": 1, "event": "job", "job": "f",
                                "state": "unknown"})
        self.drop_job("other", [self.url("o%d" % i) for i in range(3)])
        self.wait_done("other")
        self.drop_job("f", [self.url("f%d" % i) for i in range(3)])
        lines = c.until(is_done("f"))
        self.assert_seqs(lines)
        self.assertTrue(all(o["job"] == "f" for o in lines), lines)
        self.assertEqual([o["event"] for o in lines],
                         ["job_queued", "job_claimed"] + ["url_done"] * 3 +
                         ["job_done"])
        self.assertEqual(lines[-1]["state"], "done")
        # once ended, a new subscription says so at once
        c2 = self.client("events f")
        self.assertEqual(c2.line(), {
            "proto": 1, "event": "job", "job": "f", "state": "done",
            "result": self.result_path("done", "f")})

    # -- wait --------------------------------------------------------------

    def test_wait_on_ended_jobs(self):
        self.drop_job("ok", [self.url("a")])
        self.drop_job("bad", [self.url("b", status=500)])
        self.wait_done("ok")
        self.wait_done("bad")
        c = self.client("wait ok", "wait bad", "wait nosuch")
        self.assertEqual(c.line(), {
            "proto": 1, "event": "job", "job": "ok", "state": "done",
            "result": self.result_path("done", "ok")})
        self.assertEqual(c.line(), {
            "proto": 1, "event": "job", "job": "bad", "state": "failed",
            "result": self.result_path("failed", "bad")})
        self.assertEqual(c.line()["state"], "unknown")

    @config(workers={"count": 2})
    def test_wait_on_a_running_job(self):
        # 4 URLs of 3 s each, two at a time: about 6 s
        urls = [self.url("w%d" % i, size=30000, drip=10000)
                for i in range(4)]
        self.drop_job("w", urls)
        wait_for(lambda: os.path.exists(self.daemon.spool_path("active", "w")),
                 10, "the claim of w")
        c = self.client("wait w")
        snap = c.line()
        self.assertEqual(snap["event"], "job")
        self.assertEqual(snap["state"], "active")
        for k in ("urls", "done", "failed", "running", "queued", "bytes",
                  "rate", "url_rate", "eta"):
            self.assertIn(k, snap)
        lines = c.until(is_done("w"), timeout=30)
        kinds = [o["event"] for o in lines]
        self.assertNotIn("url_done", kinds)
        self.assertNotIn("job_queued", kinds)
        progress = [o for o in lines if o["event"] == "progress"]
        self.assertGreaterEqual(len(progress), 2, kinds)
        for p in progress:
            self.assertEqual(p["job"], "w")
            self.assertIn(p["state"], ("validating", "running", "finishing"))
            self.assertEqual(p["urls"], 4)
            self.assertEqual(p["done"] + p["failed"] + p["running"] +
                             p["queued"], 4, p)
            self.assertLessEqual(p["running"], 2, p)
        self.assertTrue(any(p["rate"] > 0 for p in progress), progress)
        self.assertTrue(any(p["eta"] is not None for p in progress),
                        progress)
        done = progress[-1]["bytes"]
        self.assertGreater(done, 0)
        self.assertEqual(lines[-1]["state"], "done")
        self.assertEqual(lines[-1]["bytes"], 4 * 30000)
        # the connection stays: another wait on it is answered
        c.send("wait w")
        self.assertEqual(c.line()["state"], "done")

    def test_rename_at_claim_is_followed(self):
        self.drop_job("r", [self.url("r0")])
        self.wait_done("r")
        c = self.client("wait r")
        self.assertEqual(c.line()["state"], "done")
        e = self.client("events r")
        self.assertEqual(e.line()["state"], "done")
        # a file copied straight into new/ under a name done/ holds
        src = os.path.join(self.tmp, "r.txt")
        with open(src, "w") as f:
            f.write(self.url("r1") + "\n")
        # (copyfile: the daemon may claim it as soon as it is closed,
        # before a copy of the mode bits could follow)
        shutil.copyfile(src, self.daemon.spool_path("new", "r"))
        self.jobs.add("r.1")
        lines = c.until(is_done("r.1"))
        claimed = [o for o in lines if o["event"] == "job_claimed"]
        self.assertEqual(len(claimed), 1, lines)
        self.assertEqual(claimed[0]["job"], "r.1")
        self.assertEqual(claimed[0]["queued_as"], "r")
        self.assertEqual(lines[-1]["state"], "done")
        self.assertEqual(lines[-1]["result"], self.result_path("done", "r.1"))
        elines = e.until(is_done("r.1"))
        self.assertEqual([o["event"] for o in elines],
                         ["job_queued", "job_claimed", "url_done",
                          "job_done"])
        self.assertEqual(elines[0]["job"], "r")
        self.assertEqual(elines[2]["job"], "r.1")

    # -- slow subscribers --------------------------------------------------

    def run_many(self, name, n):
        """A job of n small URLs, long ones (each url_done line is some
        3 KiB); seconds from the drop to its end."""
        urls = [self.url("%s-%05d" % (name, i), size=64, pad="p" * 1500)
                for i in range(n)]
        t0 = time.monotonic()
        self.drop_job(name, urls)
        state, rows = self.wait_done(name, timeout=120)
        took = time.monotonic() - t0
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), n)
        return took

    def control_stats(self):
        return self.query("stats")["control"]

    @config(workers={"count": 16})
    def test_slow_subscriber_does_not_slow_the_daemon(self):
        n = 1000
        base = self.run_many("plain", n)
        stuck = self.client("events", rcvbuf=4096)
        wait_for(lambda: self.control_stats()["subscribers"] == 1, 10,
                 "the subscription")
        slowed = self.run_many("slowed", n)
        ratio = base / slowed
        print("\n%s: %d URLs in %.2f s alone, %.2f s with a subscriber "
              "that does not read (ratio %.2f)" % (ft.MODEL, n, base, slowed,
                                                   ratio), file=sys.stderr)
        self.assertGreaterEqual(ratio, 0.3)
        st = wait_for(lambda: (lambda s: s if s["subscribers_dropped"] >= 1
                               else None)(self.control_stats()),
                      30, "the subscriber to be dropped")
        self.assertGreater(st["events_missed"], 0)
        lines = stuck.rest()
        self.assertGreater(len(lines), 100)
        last = lines[-1]
        self.assertEqual(last["event"], "missed", last)
        self.assertIs(last["dropped"], True)
        self.assertGreater(last["count"], 0)
        seqs = [o["seq"] for o in lines if "seq" in o]
        self.assertEqual(seqs, sorted(set(seqs)))
        stuck.close()
        wait_for(lambda: self.control_stats()["subscribers"] == 0, 10,
                 "the dropped subscriber to be gone")

    def test_subscription_limit(self):
        c = self.client()
        c.send("events " + "x" * 300)
        self.assertIn("at most 255 bytes", c.line()["error"])
        for i in range(SUBS_MAX):
            c.send("%s j%d" % ("wait" if i % 2 else "events", i))
        for i in range(SUBS_MAX):
            o = c.line()
            self.assertEqual((o["event"], o["job"]), ("job", "j%d" % i))
        c.send("wait one-too-many")
        self.assertIn("at most 256", c.line()["error"])
        c.send("events")        # `events` is not a job subscription
        self.assertEqual(c.line()["event"], "subscribed")
        st = self.control_stats()
        self.assertEqual(st["subscribers"], 1)
        self.assertGreaterEqual(st["clients"], 2)
        c.close()
        wait_for(lambda: self.control_stats()["subscribers"] == 0, 10,
                 "the subscriptions to end with the connection")
        # the daemon's index is clean: a fresh subscriber sees one job only
        e = self.client("events j3")
        self.assertEqual(e.line()["state"], "unknown")
        self.drop_job("j3", [self.url("x")])
        self.assertEqual(e.until(is_done("j3"))[-1]["state"], "done")

    def test_subscriber_not_idle_closed(self):
        c = self.client("wait later")
        self.assertEqual(c.line()["state"], "unknown")
        # past CONTROL_IDLE_TIMEOUT (10 s) the connection is still there
        self.assertTrue(ft.still_for(lambda: self.control_stats()[
            "subscribers"] == 1, 11))
        self.drop_job("later", [self.url("l")])
        self.assertEqual(c.until(is_done("later"))[-1]["state"], "done")

    # -- jobs JOB ----------------------------------------------------------

    @config(http={"retries": 5, "retry_delay": 1, "retry_max_delay": 1},
            workers={"count": 2})
    def test_jobs_detail(self):
        urls = [self.url("d0", size=20000, drip=5000),
                self.url("d1", status=503).replace("http://",
                                                   "http://u:secret@"),
                self.url("d2", size=20000, drip=5000)]
        self.drop_job("d", urls)

        def errors():
            o = self.query("jobs d")
            return o if "job" in o and len(o["job"].get("errors", [])) >= 2 \
                else None
        o = wait_for(errors, 15, "two errors in the detail of d")
        j = o["job"]
        self.assertEqual(j["name"], "d")
        self.assertEqual(j["state"], "running")
        self.assertEqual(j["urls"], 3)
        for k in ("done", "failed", "running", "queued", "bytes", "rate",
                  "url_rate", "eta"):
            self.assertIn(k, j)
        e = j["errors"][-1]
        self.assertEqual(e["index"], 1)
        self.assertEqual(e["status"], 503)
        self.assertNotIn("secret", e["url"])
        tries = [x["attempt"] for x in j["errors"] if x["index"] == 1]
        self.assertEqual(tries, sorted(set(tries)), j["errors"])
        self.assertLess(abs(e["time"] - time.time()), 60)
        self.assertNotEqual(e["error"], "")
        self.assertLessEqual(len(j["errors"]), 5)

        self.assertEqual(self.query("jobs nosuch"),
                         {"proto": 1, "error": "no such job: nosuch"})
        self.drop_job("quick", [self.url("q")])
        self.wait_done("quick")
        self.assertEqual(self.query("jobs quick"), {
            "proto": 1, "job": {"name": "quick", "state": "done",
                                "result": self.result_path("done", "quick")}})
        self.query("cancel d")
        self.wait_done("d")
        self.assertEqual(self.query("jobs d")["job"]["state"], "failed")


if __name__ == "__main__":
    ft.main()
