#!/usr/bin/env python3
"""
e2e_segments.py: end-to-end tests of segmented downloads (http.segments,
http.segment_min_size, the segments= field of a job line) against
tests/httpd.py on 127.0.0.1, under the engine FETCHD_MODEL names.

    FETCHD=src/fetchd FETCHD_MODEL=event python3 tests/e2e_segments.py -v

Covered: a 200 MiB file in 4 ranges is byte-exact, fetched as a probe
(HEAD) and 4 ranged GETs, one result row; a segment reset mid-way is retried alone from the byte
it got to, and the row counts its attempts; a kill -9 mid-download and a
restart resume every segment from the offset its slot in NAME.part.segs
held at the kill, without a second probe (and so does a stop and start); a server without ranges gets
one stream; a short file gets fewer segments; segments= on a line wins
over the config, and so does @default segments=; sha256 verified (a wrong one fails the URL and leaves no
.part or .segs); per_host caps segments too; a resource that changes
between the probe and the segments (If-Range answered with a 200), or a
server that sends another range than asked, gets the URL fetched again as
one stream; a job cancelled mid-download fails with one "cancelled" row
and leaves no .part or .segs; the probe and every segment send the job
line's headers.
"""

import hashlib
import os
import re
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, config, wait_for  # noqa: E402
from httpd import body_slice  # noqa: E402

MIB = 1024 * 1024
SLOT = 24                       # fetch.c: SEG_SLOT, three uint64
RANGE_RE = re.compile(r"^bytes=(\d+)-(\d+)$")


def split(length, n):
    """fetch_seg_split()'s starts for n ranges."""
    return [length * i // n for i in range(n)]


def ranged_gets(log, key):
    """(start, end) of every ranged GET for key, in order of arrival."""
    out = []
    for r in sorted(log, key=lambda r: r["time"]):
        if r["path"] == key and r["method"] == "GET" and r["range"]:
            m = RANGE_RE.match(r["range"])
            if m:
                out.append((int(m.group(1)), int(m.group(2))))
    return out


class SegmentsTest(FetchdTestCase):
    settings = {"http": {"segments": 4, "segment_min_size": "64K"},
                "workers": {"count": 8, "per_host": 8}}

    def file_matches(self, path, size, seed=0):
        """path holds exactly the body of size and seed (compared in
        chunks: no 200 MiB copy in memory)."""
        self.assertEqual(os.path.getsize(path), size)
        chunk = 8 * MIB
        with open(path, "rb") as f:
            for off in range(0, size, chunk):
                n = min(chunk, size - off)
                if f.read(n) != body_slice(seed, off, n):
                    self.fail("%s differs in bytes %d..%d" % (path, off,
                                                             off + n))

    def key_of(self, url):
        """The path of url: what the server log's "path" holds."""
        return "/f/" + url.split("/f/", 1)[1].split("?", 1)[0]

    def methods(self, key):
        return [r["method"] for r in self.server.requests_for(key)]

    def test_200mib_in_4_ranges(self):
        size = 200 * MIB
        url = self.url("big.bin", size=size)
        key = self.key_of(url)
        self.drop_job("j", [url])
        state, rows = self.wait_done("j", timeout=300)
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), 1)
        self.assert_row(rows[0], "ok", nbytes=size, path="big.bin")
        self.file_matches(os.path.join(self.job_dir("j"), "big.bin"), size)
        log = self.server.requests_for(key)
        self.assertEqual([r["method"] for r in log if r["method"] == "HEAD"],
                         ["HEAD"])
        starts = split(size, 4)
        ends = starts[1:] + [size]
        self.assertEqual(sorted(ranged_gets(log, key)),
                         [(s, e - 1) for s, e in zip(starts, ends)])
        self.assertEqual(len(log), 5, log)
        self.assertEqual(self.job_files("j"), {"big.bin"})

    def test_no_ranges_one_stream(self):
        size = 1 * MIB
        url = self.url("plain.bin", size=size, range=0)
        key = self.key_of(url)
        self.drop_job("j", [url])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", status=200, nbytes=size)
        self.file_matches(os.path.join(self.job_dir("j"), "plain.bin"), size)
        log = self.server.requests_for(key)
        self.assertEqual([(r["method"], r["range"]) for r in log],
                         [("HEAD", None), ("GET", None)])

    def test_short_file_fewer_segments(self):
        size = 150 * 1024       # 64K each at least: 2 ranges
        url = self.url("short.bin", size=size)
        key = self.key_of(url)
        self.drop_job("j", [url])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        self.file_matches(os.path.join(self.job_dir("j"), "short.bin"), size)
        self.assertEqual(sorted(ranged_gets(self.server.log(), key)),
                         [(0, size // 2 - 1), (size // 2, size - 1)])

    @config(http={"segments": 1})
    def test_line_field_wins(self):
        size = 1 * MIB
        seg = self.url("three.bin", size=size)
        one = self.url("one.bin", size=size)
        other = self.url("default.bin", size=size)
        self.drop_job("j", [seg + " segments=3", one])
        # @default segments= for every line without its own.
        self.drop_job("k", ["@default segments=2", other, one + " segments=1"])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), 2)
        state, rows = self.wait_done("k")
        self.assertEqual(state, "done")
        self.assertEqual(len(ranged_gets(self.server.log(),
                                         self.key_of(other))), 2)
        self.assertEqual(self.methods(self.key_of(one)), ["GET", "GET"])
        self.assertEqual(len(ranged_gets(self.server.log(),
                                         self.key_of(seg))), 3)
        self.file_matches(os.path.join(self.job_dir("j"), "three.bin"), size)

    def test_bad_segments_field(self):
        url = self.url("a.bin")
        self.drop_job("j", ["# c", url + " segments=17"])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "failed")
        self.assertIn("line 2", rows[0].error_text)
        self.assertIn("segments", rows[0].error_text)

    def test_sha256_verified(self):
        size = 3 * MIB + 5
        data = body_slice(0, 0, size)
        good = hashlib.sha256(data).hexdigest()
        ok = self.url("good.bin", size=size)
        self.drop_job("j", [ok + " sha256=" + good])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", nbytes=size)
        self.assertEqual(len(ranged_gets(self.server.log(),
                                         self.key_of(ok))), 4)

    @config(http={"retries": 0})
    def test_sha256_wrong_fails(self):
        url = self.url("bad.bin", size=2 * MIB)
        self.drop_job("j", [url + " sha256=" + "0" * 64])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "failed")
        self.assert_row(rows[0], "failed")
        self.assertIn("sha256", rows[0].error_text)
        self.assertEqual(len(ranged_gets(self.server.log(),
                                         self.key_of(url))), 4)
        self.assertEqual(self.job_files("j"), set())

    @config(workers={"per_host": 2})
    def test_per_host_caps_segments(self):
        size = 2 * MIB
        url = self.url("capped.bin", size=size, drip=2 * MIB)
        self.drop_job("j", [url])
        state, rows = self.wait_done("j", timeout=60)
        self.assertEqual(state, "done")
        self.file_matches(os.path.join(self.job_dir("j"), "capped.bin"), size)
        self.assertEqual(len(ranged_gets(self.server.log(),
                                         self.key_of(url))), 4)
        now, peak = self.server.concurrency()
        self.assertEqual(peak, 2)

    def test_changed_resource_one_stream(self):
        size = 1 * MIB
        # The probe sees ETag "A", every later request "B": If-Range "A"
        # gets the whole body with a 200.
        url = self.url("moved.bin", size=size, etag=["A", "B"])
        key = self.key_of(url)
        self.drop_job("j", [url])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", nbytes=size)
        self.file_matches(os.path.join(self.job_dir("j"), "moved.bin"), size)
        log = self.server.requests_for(key)
        self.assertEqual(log[0]["method"], "HEAD")
        self.assertTrue(all(r["if_range"] == '"A"' for r in log
                            if r["range"]), log)
        last = log[-1]
        self.assertEqual((last["method"], last["range"], last["status"]),
                         ("GET", None, 200))

    def test_segment_retried(self):
        size = 1 * MIB
        # The second request (the first segment the server sees) is reset
        # after 10000 bytes: that segment alone is retried, from where it
        # got, and the row counts its 2 attempts.
        url = self.url("flaky.bin", size=size, reset=10000, faults=2)
        key = self.key_of(url)
        self.drop_job("j", [url])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", nbytes=size, attempts=2)
        self.file_matches(os.path.join(self.job_dir("j"), "flaky.bin"), size)
        log = self.server.requests_for(key)
        self.assertEqual(len(log), 6, log)
        first = min((r for r in log if r["range"]), key=lambda r: r["n"])
        again = [r for r in log[1:] if r["range"] and
                 RANGE_RE.match(r["range"]).group(2) ==
                 RANGE_RE.match(first["range"]).group(2)]
        self.assertEqual(len(again), 2, log)
        start0 = int(RANGE_RE.match(first["range"]).group(1))
        start1 = int(RANGE_RE.match(again[1]["range"]).group(1))
        self.assertGreater(start1, start0)
        self.assertLessEqual(start1, start0 + 10000)

    def test_cancel_mid_download(self):
        if not ft.FETCHCTL:
            self.skipTest("FETCHCTL is not set")
        size = 4 * MIB
        url = self.url("cancelled.bin", size=size, drip=256 * 1024)
        self.drop_job("j", [url])
        part = os.path.join(self.job_dir("j"), "cancelled.bin.part")
        self.wait_file_size(part + ".segs", 4 * SLOT, timeout=30)
        p = subprocess.run([ft.FETCHCTL, "-s", self.daemon.socket, "cancel",
                            "j"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        state, rows = self.wait_done("j")
        self.assertEqual(state, "failed")
        self.assertEqual(len(rows), 1)
        self.assert_row(rows[0], "failed")
        self.assertIn("cancelled", rows[0].error_text)
        self.assertEqual(self.job_files("j"), set())

    @config(daemon={"shutdown_grace": 0})
    def test_stop_and_start_resumes(self):
        size = 4 * MIB
        url = self.url("stopped.bin", size=size, drip=512 * 1024)
        key = self.key_of(url)
        self.drop_job("j", [url])
        segs = os.path.join(self.job_dir("j"), "stopped.bin.part.segs")
        self.wait_file_size(segs, 4 * SLOT, timeout=30)
        self.assertEqual(self.daemon.stop(), 0)
        t_stop = time.time()
        held = self.slots(segs, 4)
        self.daemon.start()
        state, rows = self.wait_done("j", timeout=60)
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", nbytes=size)
        self.file_matches(os.path.join(self.job_dir("j"), "stopped.bin"),
                          size)
        after = [r for r in self.server.requests_for(key)
                 if r["time"] > t_stop]
        self.assertNotIn("HEAD", [r["method"] for r in after])
        ends = split(size, 4)[1:] + [size]
        self.assertEqual(sorted(ranged_gets(after, key)),
                         [(nxt, e - 1) for (s, nxt), e in zip(held, ends)
                          if nxt < e])

    def test_headers_on_every_request(self):
        size = 1 * MIB
        url = self.url("hdr.bin", size=size)
        key = self.key_of(url)
        self.drop_job("j", ['@default header="X-Job: seg"',
                            url + ' header="X-Line: 1"'])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        log = self.server.requests_for(key)
        self.assertEqual(len(log), 5)
        for r in log:
            names = {k.lower(): v for k, v in r["headers"]}
            self.assertEqual((names.get("x-job"), names.get("x-line")),
                             ("seg", "1"), r)

    def test_wrong_range_one_stream(self):
        size = 1 * MIB
        # The third request (a segment) gets a range 100 bytes later than
        # it asked for: the URL is fetched again as one stream.
        url = self.url("shifted.bin", size=size, cr_shift=100, cr_on=3)
        key = self.key_of(url)
        self.drop_job("j", [url])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", nbytes=size)
        self.file_matches(os.path.join(self.job_dir("j"), "shifted.bin"),
                          size)
        last = self.server.requests_for(key)[-1]
        self.assertEqual((last["range"], last["status"]), (None, 200))
        self.assertEqual(self.job_files("j"), {"shifted.bin"})

    def slots(self, path, n):
        """(start, next) of each of n slots of a .segs file."""
        with open(path, "rb") as f:
            data = f.read()
        out = []
        for i in range(n):
            rec = data[i * SLOT:(i + 1) * SLOT]
            if len(rec) < SLOT:
                out.append(None)
                continue
            ino, start, nxt = struct.unpack("=QQQ", rec)
            out.append((start, nxt))
        return out

    def test_kill9_resumes_each_segment(self):
        size = 4 * MIB
        url = self.url("slow.bin", size=size, drip=512 * 1024)
        key = self.key_of(url)
        self.drop_job("j", [url])
        part = os.path.join(self.job_dir("j"), "slow.bin.part")
        segs = part + ".segs"
        starts = split(size, 4)
        ends = starts[1:] + [size]

        def midway():
            try:
                sl = self.slots(segs, 4)
            except FileNotFoundError:
                return None
            return all(s is not None and s[1] >= s[0] + 64 * 1024
                       for s in sl) or None
        wait_for(midway, 30, "every segment to write 64 KiB",
                 self.daemon.log_tail)
        self.daemon.kill9()
        t_kill = time.time()
        held = self.slots(segs, 4)
        self.assertEqual([s[0] for s in held], starts)
        self.assertTrue(all(s[1] < e for s, e in zip(held, ends)), held)
        with open(part, "rb") as f:
            disk = f.read()
        for (s, nxt) in held:       # what the slot claims is on disk
            self.assertEqual(disk[s:nxt], body_slice(0, s, nxt - s))
        self.daemon.start()
        state, rows = self.wait_done("j", timeout=60)
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", nbytes=size)
        self.file_matches(os.path.join(self.job_dir("j"), "slow.bin"), size)
        after = [r for r in self.server.requests_for(key)
                 if r["time"] > t_kill]
        self.assertNotIn("HEAD", [r["method"] for r in after])
        got = sorted(ranged_gets(after, key))
        self.assertEqual(got, [(nxt, e - 1) for (s, nxt), e in
                               zip(held, ends)])


if __name__ == "__main__":
    ft.main()
