#!/usr/bin/env python3
"""
e2e_mirrors.py: end-to-end tests of mirrors (mirror=URL on a job line):
the real fetchd (FETCHD, the engine FETCHD_MODEL names) fetches from
tests/httpd.py on 127.0.0.1, where each mirror is another path or query of
the one server, so its request log shows which URL was asked and how.

    FETCHD=src/fetchd FETCHD_MODEL=event python3 tests/e2e_mirrors.py -v

Covered: a 404 and a body cut short (its retries used up) move to the
next URL of the line, and the result row's served_by names the one that
served the file; a resume across mirrors keeps the bytes when the length
and the strong ETag agree (the mirror is asked for the rest with Range and
If-Range), and with the length alone when neither has a validator, and
starts afresh for another ETag or another length; every URL failing fails
the line with the last error and names the last URL; a restart mid-file
(SIGTERM or kill -9) goes on with the mirror in use and its If-Range; a
bad mirror= fails the job with its line number; jobs without mirrors keep
their result columns; url_done carries served_by; per_host counts the
host of the URL in use; in cluster mode (with redis-server, else skipped)
the coordinator moves to the mirror and the row has node and served_by.
"""

import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, body, config, wait_for  # noqa: E402
from resultfile import (CLUSTER_MIRROR_COLUMNS, MIRROR_COLUMNS,  # noqa
                        RESULT_COLUMNS)
import e2e_cluster as ec  # noqa: E402

SIZE = 100000


def header(path):
    with open(path) as f:
        return f.readline().lstrip("#").split()


class MirrorTests(FetchdTestCase):

    settings = {"http": {"retries": 0}}

    def key(self, url):
        """httpd.py's counter key of url (path?query)."""
        return "/" + url.split("/", 3)[3]

    def reqs(self, url):
        return self.server.requests_for(self.key(url))

    def fetch(self, name, lines):
        self.drop_job(name, lines)
        return self.wait_done(name)

    def test_404_moves_to_the_next_mirror(self):
        a = self.url("a.bin", status=404)
        b = self.url("b.bin", status=404)
        c = self.url("c.bin", size=5000, seed=3)
        state, rows = self.fetch("j", ["%s out=x.bin mirror=%s mirror=%s"
                                       % (a, b, c)])
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", status=200, nbytes=5000, attempts=3,
                        path="x.bin")
        self.assertEqual(rows[0].url, a)
        self.assertEqual(rows[0].served_by, c)
        self.assert_file(os.path.join(self.job_dir("j"), "x.bin"),
                         body(5000, 3))
        self.assertEqual(header(self.daemon.finished("j")[1]),
                         MIRROR_COLUMNS)
        for u in (a, b, c):
            self.assertEqual(len(self.reqs(u)), 1, u)
        self.assertIn("trying mirror 2 of 2", self.daemon.log_text())

    def test_jobs_without_mirrors_keep_their_columns(self):
        state, rows = self.fetch("j", [self.url("a.bin", size=10)])
        self.assertEqual(state, "done")
        self.assertEqual(header(self.daemon.finished("j")[1]),
                         RESULT_COLUMNS)
        self.assertIsNone(rows[0].served_by)
        with open(self.daemon.finished("j")[1]) as f:
            self.assertEqual(f.read().split("\n")[1].count("\t"), 7)

    def test_a_line_without_mirrors_in_a_job_with_mirrors(self):
        a = self.url("a.bin", size=10)
        b = self.url("b.bin", status=404)
        c = self.url("c.bin", size=20)
        state, rows = self.fetch("j", [a, "%s mirror=%s" % (b, c)])
        self.assertEqual(state, "done")
        self.assertEqual(rows[0].served_by, a)
        self.assertEqual(rows[1].url, b)
        self.assertEqual(rows[1].served_by, c)

    @config(http={"retries": 1})
    def test_truncated_body_with_retries_used_up_resumes_on_the_mirror(self):
        """Two attempts on the first URL (http.retries is per URL), both
        cut short; the mirror, with the same length and strong ETag, is
        asked for the rest only."""
        a = self.url("m1.bin", size=SIZE, etag="v1", truncate=30000,
                     faults=9)
        b = self.url("m2.bin", size=SIZE, etag="v1")
        state, rows = self.fetch("j", ["%s mirror=%s" % (a, b)])
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", status=206, nbytes=SIZE, attempts=3)
        self.assertEqual(rows[0].served_by, b)
        self.assert_file(os.path.join(self.job_dir("j"), "m1.bin"),
                         body(SIZE))
        ra = self.reqs(a)
        self.assertEqual(len(ra), 2, ra)
        self.assertEqual(ra[1]["range"], "bytes=30000-")
        rb = self.reqs(b)
        self.assertEqual(len(rb), 1, rb)
        self.assertEqual(rb[0]["range"], "bytes=60000-")
        self.assertEqual(rb[0]["if_range"], '"v1"')
        self.assertEqual(rb[0]["status"], 206)
        self.assertEqual(rb[0]["sent"], SIZE - 60000)

    def test_another_etag_starts_afresh(self):
        a = self.url("m1.bin", size=SIZE, etag="v1", truncate=30000,
                     faults=9)
        b = self.url("m2.bin", size=SIZE, seed=5, etag="other")
        state, rows = self.fetch("j", ["%s mirror=%s" % (a, b)])
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", status=200, nbytes=SIZE, attempts=2)
        self.assertEqual(rows[0].served_by, b)
        self.assert_file(os.path.join(self.job_dir("j"), "m1.bin"),
                         body(SIZE, 5))
        rb = self.reqs(b)
        self.assertEqual(len(rb), 1, rb)
        self.assertEqual(rb[0]["range"], "bytes=30000-")
        self.assertEqual(rb[0]["if_range"], '"v1"')
        self.assertEqual(rb[0]["status"], 200)

    def test_same_length_without_validators_keeps_the_bytes(self):
        a = self.url("m1.bin", size=SIZE, truncate=30000, faults=9)
        b = self.url("m2.bin", size=SIZE)
        state, rows = self.fetch("j", ["%s mirror=%s" % (a, b)])
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", status=206, nbytes=SIZE, attempts=2)
        rb = self.reqs(b)
        self.assertEqual(rb[0]["range"], "bytes=30000-")
        self.assertIsNone(rb[0]["if_range"])
        self.assert_file(os.path.join(self.job_dir("j"), "m1.bin"),
                         body(SIZE))

    def test_another_length_starts_afresh(self):
        """Without validators the length decides: the mirror's copy is
        shorter, the .part is emptied and the mirror, though http.retries
        is 0, gets the attempt that fetches it whole."""
        a = self.url("m1.bin", size=SIZE, truncate=30000, faults=9)
        b = self.url("m2.bin", size=SIZE - 1000, seed=5)
        state, rows = self.fetch("j", ["%s mirror=%s" % (a, b)])
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", status=200, nbytes=SIZE - 1000,
                        attempts=3)
        self.assert_file(os.path.join(self.job_dir("j"), "m1.bin"),
                         body(SIZE - 1000, 5))
        rb = self.reqs(b)
        self.assertEqual([r["status"] for r in rb], [206, 200], rb)
        self.assertEqual(rb[0]["range"], "bytes=30000-")
        self.assertIsNone(rb[1]["range"])

    @config(http={"retries": 1})
    def test_every_mirror_failing_fails_with_the_last_error(self):
        a = self.url("a.bin", status=404)
        b = self.url("b.bin", status=503)
        state, rows = self.fetch("j", ["%s mirror=%s" % (a, b),
                                       self.url("ok.bin", size=10)])
        self.assertEqual(state, "failed")
        self.assert_row(rows[0], "failed", status=503, nbytes=0, attempts=3)
        self.assertEqual(rows[0].url, a)
        self.assertEqual(rows[0].served_by, b)
        self.assertIn("503", rows[0].error_text)
        self.assert_row(rows[1], "ok")
        self.assert_no_parts("j")

    def test_bad_mirror_fails_the_job_with_its_line_number(self):
        ok = self.url("a.bin", size=10)
        state, rows = self.fetch("j", [
            ok, "%s mirror=ftp://example.org/x" % ok,
            "%s mirror=" % ok,
            "%s %s" % (ok, " ".join("mirror=" + ok for _ in range(17)))])
        self.assertEqual(state, "failed")
        errors = [r.error_text for r in rows]
        self.assertEqual(len(errors), 3, errors)
        self.assertIn("line 2: mirror 1: scheme 'ftp' not allowed",
                      errors[0])
        self.assertTrue(errors[1].startswith("line 3: mirror 1: "), errors)
        self.assertIn("line 4: more than 16 mirror= fields", errors[2])
        self.assertEqual(self.server.requests_for("/f/a.bin"), [])
        self.assertEqual(header(self.daemon.finished("j")[1]),
                         RESULT_COLUMNS)

    def test_url_done_names_the_mirror(self):
        a = self.url("a.bin", status=404)
        b = self.url("b.bin", size=10)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.connect(self.daemon.socket)
        sock.sendall(b"events\n")
        buf = b""

        def line():
            nonlocal buf
            while b"\n" not in buf:
                sock.settimeout(10 * ft.SCALE)
                data = sock.recv(65536)
                self.assertTrue(data, "EOF on the control socket")
                buf += data
            raw, buf = buf.split(b"\n", 1)
            return json.loads(raw)
        self.assertEqual(line()["event"], "subscribed")
        self.drop_job("j", ["%s mirror=%s" % (a, b)])
        while True:
            ev = line()
            if ev["event"] == "url_done":
                break
        self.assertEqual(ev["url"], a)
        self.assertEqual(ev["served_by"], b)
        self.assertEqual(ev["outcome"], "ok")
        self.wait_done("j")

    def slow_mirror(self, name):
        """A job whose URL is a 404 and whose mirror sends 2 MB slowly
        with an ETag: (line URL, mirror URL, .part path), once the .part
        holds some of the mirror's bytes."""
        a = self.url("a.bin", status=404)
        b = self.url("b.bin", size=2000000, etag="v1", drip=200000)
        self.drop_job(name, ["%s mirror=%s" % (a, b)])
        part = os.path.join(self.job_dir(name), "a.bin.part")
        self.wait_file_size(part, 100000)
        return a, b, part

    def assert_went_on(self, name, a, b, kept):
        state, rows = self.wait_done(name, timeout=30)
        self.assertEqual(state, "done")
        self.assertEqual(rows[0].served_by, b)
        self.assert_file(os.path.join(self.job_dir(name), "a.bin"),
                         body(2000000))
        self.assertEqual(len(self.reqs(a)), 1, "the line's URL asked again")
        last = self.reqs(b)[-1]
        self.assertEqual(last["status"], 206, last)
        self.assertEqual(last["if_range"], '"v1"', last)
        start = int(last["range"].split("=")[1].rstrip("-"))
        self.assertGreaterEqual(start, kept)

    @config(workers={"per_host": 1, "count": 4})
    def test_per_host_counts_the_mirror_in_use(self):
        """The cap is the host of the URL in use: a mirror on localhost
        waits for the other download from localhost, though its line's
        own URL was on 127.0.0.1."""
        local = self.server.base.replace("127.0.0.1", "localhost")
        a = self.url("a.bin", status=404, delay=300)
        b = local + "/f/b.bin?size=100000&drip=400000"
        c = local + "/f/c.bin?size=400000&drip=400000"
        self.drop_job("j", [c, "%s mirror=%s" % (a, b)])
        self.server.wait_requests(self.key(a), 1)
        self.server.concurrency(reset=True)
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        self.assertEqual(rows[1].served_by, b)
        self.assertEqual(self.server.concurrency()[1], 1)
        self.assertIn("trying mirror 1 of 1 (localhost)",
                      self.daemon.log_text())

    @config(daemon={"shutdown_grace": 0})
    def test_restart_goes_on_with_the_mirror_in_use(self):
        a, b, part = self.slow_mirror("j")
        self.assertEqual(self.daemon.stop(), 0)
        kept = os.stat(part).st_size
        self.assertGreater(kept, 0)
        with open(self.daemon.spool_path("active", "j.journal")) as f:
            recs = [ln.split("\t") for ln in f.read().splitlines()]
        self.assertIn(["M", "0", "1", "2000000", '"v1"', ""], recs)
        self.daemon.start()
        self.assert_went_on("j", a, b, kept)

    @config(http={"retries": 1})
    def test_kill9_goes_on_with_the_mirror_in_use(self):
        """The mirror's first body is cut short: the retry is journalled
        with what the .part is a copy of, so after kill -9 the resume
        still asks with If-Range."""
        a = self.url("a.bin", status=404)
        b = self.url("b.bin", size=2000000, etag="v1", drip=200000,
                     truncate=50000)
        self.drop_job("j", ["%s mirror=%s" % (a, b)])
        part = os.path.join(self.job_dir("j"), "a.bin.part")
        self.server.wait_requests(self.key(b), 1)
        self.wait_file_size(part, 100000)
        self.daemon.kill9()
        kept = os.stat(part).st_size
        self.daemon.start()
        self.assert_went_on("j", a, b, kept)
        self.assertEqual(len(self.reqs(b)), 3)

    @config(http={"retries": 1})
    def test_kill9_keeps_if_range_without_mirrors(self):
        """The same journal record serves a line without mirrors: after
        kill -9 its .part is still asked for with If-Range."""
        a = self.url("a.bin", size=2000000, etag="v1", drip=200000,
                     truncate=50000)
        self.drop_job("j", [a])
        part = os.path.join(self.job_dir("j"), "a.bin.part")
        self.wait_file_size(part, 100000)
        self.daemon.kill9()
        self.daemon.start()
        state, rows = self.wait_done("j", timeout=30)
        self.assertEqual(state, "done")
        self.assertIsNone(rows[0].served_by)
        self.assert_file(os.path.join(self.job_dir("j"), "a.bin"),
                         body(2000000))
        last = self.reqs(a)[-1]
        self.assertEqual((last["status"], last["if_range"]), (206, '"v1"'))


class ClusterMirrorTests(ec.ClusterCase):
    """Cluster mode: the coordinator's runner moves to the next URL, and
    the entry it sends is that URL."""

    def test_coordinator_moves_to_the_mirror(self):
        n0 = self.add_node("n0", "both", http={"retries": 0})
        self.add_node("n1", "fetch")
        a = self.server.url("a.bin", status=404, key="a")
        b = self.server.url("b.bin", size=5000, seed=2, key="b")
        ok = self.server.url("c.bin", size=10, key="c")
        self.jobs.add("j")
        n0.drop_job("j", ["%s mirror=%s" % (a, b), ok])
        rows = self.wait_done(n0, "j")
        with open(n0.spool_path("done", "j.result")) as f:
            self.assertEqual(f.readline().lstrip("#").split(),
                             CLUSTER_MIRROR_COLUMNS)
        self.assert_row(rows[0], "ok", status=200, nbytes=5000, attempts=2)
        self.assertEqual(rows[0].url, a)
        self.assertEqual(rows[0].served_by, b)
        self.assertIn(rows[0].node, ("n0", "n1"))
        self.assertEqual(rows[1].served_by, ok)
        self.assert_file(os.path.join(self.nodes[rows[0].node].dl, "j",
                                      "a.bin"), body(5000, 2))
        self.assertEqual(len(self.server.requests_for("a")), 1)
        self.wait_group_empty()


if __name__ == "__main__":
    ft.main()
