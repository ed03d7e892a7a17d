#!/usr/bin/env python3
"""
e2e.py: end-to-end conformance tests. The real fetchd (FETCHD) fetches from
tests/httpd.py on 127.0.0.1; each test drops jobs into the spool and checks
the files, the result rows and the server's request log. The same tests run
unchanged against every engine: FETCHD_MODEL picks the [workers] model.

    FETCHD=src/fetchd FETCHD_MODEL=threads python3 tests/e2e.py -v

TestHttpd checks the test server itself and needs no fetchd.
"""

import errno
import hashlib
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # the source tree may be read-only
sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, body, config, no_daemon  # noqa: E402

KIB = 1024
MIB = 1024 * 1024


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def range_start(header):
    """N of a "bytes=N-" or "bytes=N-M" Range header, else None."""
    m = re.match(r"^bytes=(\d+)-(\d*)$", header or "")
    return int(m.group(1)) if m else None


class TestHttpd(unittest.TestCase):
    """The knobs of httpd.py the tests below rely on, checked directly."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fetchd-httpd-")
        self.server = ft.Server(self.tmp)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(self.server.stop)
        self.server.start()

    def raw(self, path, headers=()):
        """One GET on a new connection; (status line, headers dict, body,
        how the connection ended: "eof" or "reset")."""
        s = socket.create_connection(("127.0.0.1", self.server.port), 5)
        req = "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" % path
        req += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
        s.sendall(req.encode())
        data, end = b"", "eof"
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                end = "reset"
                break
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, payload = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        hdrs = dict(line.split(": ", 1) for line in lines[1:])
        return lines[0], hdrs, payload, end

    def test_body_formula(self):
        b = body(1000, 5)
        self.assertEqual(len(b), 1000)
        self.assertTrue(all(b[i] == (i * 7 + 5) % 251 for i in range(1000)))
        self.assertEqual(body(0), b"")
        st, hdrs, payload, _ = self.raw("/f/a.bin?size=1000&seed=5")
        self.assertIn(" 200 ", st)
        self.assertEqual(payload, b)
        self.assertEqual(hdrs["Content-Length"], "1000")
        self.assertEqual(hdrs["Accept-Ranges"], "bytes")

    def test_status_sequence_and_log(self):
        u = "/f/s.bin?status=503,429,200&retry_after=3&key=k"
        got = [self.raw(u) for _ in range(4)]
        self.assertEqual([g[0].split()[1] for g in got],
                         ["503", "429", "200", "200"])
        self.assertEqual(got[0][1]["Retry-After"], "3")
        self.assertEqual(got[0][2], b"status 503\n")
        log = self.server.wait_requests("k", 4)
        self.assertEqual([r["n"] for r in log], [1, 2, 3, 4])
        self.assertEqual([r["status"] for r in log], [503, 429, 200, 200])
        self.assertEqual(log[2]["sent"], 1024)
        self.server.reset_counters()
        self.assertIn(" 503 ", self.raw(u)[0])

    def test_range(self):
        st, hdrs, payload, _ = self.raw("/f/r?size=100", [("Range", "bytes=40-")])
        self.assertIn(" 206 ", st)
        self.assertEqual(hdrs["Content-Range"], "bytes 40-99/100")
        self.assertEqual(payload, body(100)[40:])
        st, hdrs, _, _ = self.raw("/f/r?size=100", [("Range", "bytes=100-")])
        self.assertIn(" 416 ", st)
        self.assertEqual(hdrs["Content-Range"], "bytes */100")
        st, _, payload, _ = self.raw("/f/r?size=100&range=0",
                                     [("Range", "bytes=40-")])
        self.assertIn(" 200 ", st)
        self.assertEqual(payload, body(100))

    def test_truncate_and_reset(self):
        st, hdrs, payload, end = self.raw("/f/t?size=5000&truncate=1234")
        self.assertEqual(hdrs["Content-Length"], "5000")
        self.assertEqual((payload, end), (body(5000)[:1234], "eof"))
        _, _, payload, end = self.raw("/f/t?size=5000&truncate=1234")
        self.assertEqual(payload, body(5000))
        _, _, payload, end = self.raw("/f/x?size=5000&reset=999&faults=2")
        self.assertEqual((payload, end), (body(5000)[:999], "reset"))
        _, _, payload, end = self.raw("/f/x?size=5000&reset=999&faults=2")
        self.assertEqual(end, "reset")
        _, _, payload, end = self.raw("/f/x?size=5000&reset=999&faults=2")
        self.assertEqual((payload, end), (body(5000), "eof"))
        log = self.server.wait_requests("/f/x", 3)
        self.assertEqual([r["sent"] for r in log], [999, 999, 5000])

    def test_redirect_drip_delay(self):
        st, hdrs, _, _ = self.raw("/f/r?redirect=file%3A%2F%2F%2Fetc%2Fpasswd")
        self.assertIn(" 302 ", st)
        self.assertEqual(hdrs["Location"], "file:///etc/passwd")
        t = time.monotonic()
        _, _, payload, _ = self.raw("/f/d?size=400&drip=2000&delay=100")
        self.assertEqual(payload, body(400))
        self.assertGreaterEqual(time.monotonic() - t, 0.2)


class TestFetchd(FetchdTestCase):

    # 1
    def test_01_mixed_job(self):
        specs = [  # (url name, size, seed, with sha256, out=, expected path)
            ("zero.bin", 0, 1, True, None, "zero.bin"),
            ("one.bin", 1, 2, False, None, "one.bin"),
            ("kib.bin", KIB, 3, True, "sub/dir/renamed.bin",
             "sub/dir/renamed.bin"),
            ("mib.bin", MIB, 4, False, None, "mib.bin"),
            ("big.bin", 3 * MIB, 5, True, None, "big.bin"),
        ]
        lines, urls = ["# five URLs", ""], []
        for name, size, seed, with_sha, out, _ in specs:
            u = self.url(name, size=size, seed=seed)
            urls.append(u)
            line = u
            if out:
                line += " out=" + out
            if with_sha:
                line += " sha256=" + sha256(body(size, seed))
            lines.append(line)
        self.drop_job("mixed", lines)
        state, rows = self.wait_done("mixed", 30)
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), len(specs), rows)
        for row, u, (name, size, seed, _, _, path) in zip(rows, urls, specs):
            self.assertEqual(row.url, u)
            self.assert_row(row, "ok", 200, size, 1, path)
            self.assert_file(os.path.join(self.job_dir("mixed"), path),
                             body(size, seed))
            self.assertEqual(len(self.server.requests_for("/f/" + name)), 1)
        self.assertEqual(self.job_files("mixed"), {s[5] for s in specs})

    # 2
    @config(http={"retries": 3})
    def test_02_404_fails_without_retry(self):
        ok1 = self.url("ok1.bin", size=3000, seed=1)
        bad = self.url("missing.bin", status=404, key="k404")
        ok2 = self.url("ok2.bin", size=5000, seed=2)
        self.drop_job("j404", [ok1, bad, ok2])
        state, rows = self.wait_done("j404")
        self.assertEqual(state, "failed")
        self.assertEqual([r.url for r in rows], [ok1, bad, ok2])
        self.assert_row(rows[0], "ok", 200, 3000, 1, "ok1.bin")
        self.assert_row(rows[1], "failed", 404, attempts=1)
        self.assert_row(rows[2], "ok", 200, 5000, 1, "ok2.bin")
        self.assertEqual(len(self.server.requests_for("k404")), 1)
        d = self.job_dir("j404")
        self.assert_file(os.path.join(d, "ok1.bin"), body(3000, 1))
        self.assert_file(os.path.join(d, "ok2.bin"), body(5000, 2))
        self.assertFalse(os.path.lexists(os.path.join(d, "missing.bin")))

    # 3
    @config(http={"retries": 3})
    def test_03_503_twice_then_ok(self):
        u = self.url("s.bin", size=7000, seed=3, status="503,503,200",
                     key="k503")
        self.drop_job("j503", [u])
        state, rows = self.wait_done("j503")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, 7000, 3, "s.bin")
        reqs = self.server.requests_for("k503")
        self.assertEqual([r["status"] for r in reqs], [503, 503, 200])
        self.assert_file(os.path.join(self.job_dir("j503"), "s.bin"),
                         body(7000, 3))

    # 4
    @config(http={"retries": 2})
    def test_04_truncate_and_reset_resume_with_range(self):
        cases = [("t.bin", 300000, 6, "truncate", 100000, "ktrunc"),
                 ("r.bin", 400000, 7, "reset", 150000, "kreset")]
        urls = [self.url(n, size=s, seed=seed, key=k, **{fault: at})
                for n, s, seed, fault, at, k in cases]
        self.drop_job("jresume", urls)
        state, rows = self.wait_done("jresume")
        self.assertEqual(state, "done")
        for row, (name, size, seed, fault, at, key) in zip(rows, cases):
            self.assert_row(row, "ok", None, size, 2, name)
            self.assertIn(row.status, (200, 206), row)
            self.assert_file(os.path.join(self.job_dir("jresume"), name),
                             body(size, seed))
            reqs = self.server.requests_for(key)
            self.assertEqual(len(reqs), 2, (fault, reqs))
            self.assertIsNone(reqs[0]["range"], fault)
            self.assertEqual(reqs[0]["sent"], at, fault)
            self.assertTrue(str(reqs[1]["range"]).startswith("bytes="),
                            (fault, reqs[1]))
            self.assertEqual(range_start(reqs[1]["range"]), reqs[0]["sent"],
                             (fault, reqs[1]))
            self.assertEqual(reqs[1]["status"], 206, fault)
            self.assertEqual(reqs[1]["sent"], size - at, fault)

    # 5
    # One worker: the URL after the refused redirect runs on the same
    # worker (and, for threads and process, the same libcurl handle).
    @config(http={"retries": 2}, workers={"count": 1, "per_host": 1})
    def test_05_redirect_to_file_url_refused(self):
        evil = self.url("evil.bin", redirect="file:///etc/passwd", key="kfile")
        target = self.url("target.bin", size=777, seed=7, key="ktarget")
        good = self.url("hop.bin", redirect=target, key="khop")
        self.drop_job("jredir", [evil, good + " out=good.bin"])
        state, rows = self.wait_done("jredir")
        self.assertEqual(state, "failed")
        self.assert_row(rows[0], "failed", attempts=1)
        self.assertRegex(rows[0].error, re.compile(r"protocol|refused", re.I))
        self.assertEqual(len(self.server.requests_for("kfile")), 1)
        self.assert_row(rows[1], "ok", 200, 777, 1, "good.bin")
        self.assert_file(os.path.join(self.job_dir("jredir"), "good.bin"),
                         body(777, 7))
        self.assertEqual(len(self.server.requests_for("ktarget")), 1)
        with open("/etc/passwd", "rb") as f:
            passwd = f.read()
        for dirpath, _, files in os.walk(self.daemon.dl):
            for fn in files:
                p = os.path.join(dirpath, fn)
                if os.path.isfile(p):
                    with open(p, "rb") as f:
                        self.assertNotEqual(f.read(), passwd, p)

    # 6
    def test_06_out_escaping_the_job_dir_rejects_the_job(self):
        etc_x_existed = os.path.lexists("/etc/x")
        jobs = {
            "jdotdot": (["# out= may not climb",
                         self.url("v1.bin", key="v1"),
                         "",
                         self.url("e1.bin", key="e1") + " out=../x",
                         self.url("v2.bin", key="v2")], 4),
            "jabs": ([self.url("v3.bin", key="v3"),
                      self.url("v4.bin", key="v4"),
                      self.url("e2.bin", key="e2") + " out=/etc/x"], 3),
        }
        for name, (lines, _) in jobs.items():
            self.drop_job(name, lines)
        for name, (_, bad) in jobs.items():
            state, rows = self.wait_done(name)
            self.assertEqual(state, "failed", name)
            self.assertTrue(rows, name)
            self.assertTrue(any(("line %d:" % bad) in r.error for r in rows),
                            (name, rows))
            for r in rows:
                self.assertEqual(r.outcome, "failed", r)
            self.assertEqual(self.job_files(name), set(), name)
        self.assertEqual([r for r in self.server.log()
                          if r["path"].startswith("/f/")], [])
        self.assertFalse(os.path.lexists(os.path.join(self.daemon.dl, "x")))
        self.assertFalse(os.path.lexists(os.path.join(self.tmp, "x")))
        if not etc_x_existed:
            self.assertFalse(os.path.lexists("/etc/x"))

    # 7
    def test_07_malformed_lines(self):
        good = self.url("fine.bin", key="fine")
        jobs = {
            "jftp": ([good, "ftp://127.0.0.1/f/a.bin"], 2),
            "jsha": (["# bad checksum", good,
                      self.url("b.bin") + " sha256=" + "z" * 64], 3),
            "jshort": ([self.url("c.bin") + " sha256=" + "a" * 63], 1),
            "jfield": (["", "", "", good,
                        self.url("d.bin") + " colour=blue"], 5),
        }
        for name, (lines, _) in jobs.items():
            self.drop_job(name, lines)
        for name, (_, bad) in jobs.items():
            state, rows = self.wait_done(name)
            self.assertEqual(state, "failed", name)
            self.assertTrue(any(("line %d:" % bad) in r.error for r in rows),
                            (name, rows))
            self.assertTrue(all(r.outcome == "failed" for r in rows), rows)
        self.assertEqual([r for r in self.server.log()
                          if r["path"].startswith("/f/")], [])
        self.assertTrue(self.daemon.running())
        u = self.url("after.bin", size=4321, seed=9)
        self.drop_job("jafter", [u])
        state, rows = self.wait_done("jafter")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, 4321, 1, "after.bin")
        self.assert_file(os.path.join(self.job_dir("jafter"), "after.bin"),
                         body(4321, 9))

    # 8
    def test_08_planted_symlinks_are_not_followed(self):
        outside = os.path.join(self.tmp, "outside.txt")
        ghost = os.path.join(self.tmp, "ghost.bin")
        outdir = os.path.join(self.tmp, "outdir")
        content = b"outside the download directory\n"
        with open(outside, "wb") as f:
            f.write(content)
        os.mkdir(outdir)
        d = self.job_dir("jsym")
        os.mkdir(d)
        os.symlink(outside, os.path.join(d, "x.bin.part"))
        os.symlink(ghost, os.path.join(d, "x.bin"))
        os.symlink(outdir, os.path.join(d, "sub"))
        before = self.outside_snapshot()
        u1 = self.url("x.bin", size=2500, seed=8)
        u2 = self.url("y.bin", size=1500, seed=9)
        self.drop_job("jsym", [u1 + " out=x.bin", u2 + " out=sub/y.bin"])
        state, rows = self.wait_done("jsym")
        self.assertEqual(len(rows), 2, rows)
        after = self.outside_snapshot()
        changed = sorted(p for p in set(before) | set(after)
                         if before.get(p) != after.get(p))
        self.assertEqual(changed, [], "written outside the job directory")
        with open(outside, "rb") as f:
            self.assertEqual(f.read(), content)
        self.assertFalse(os.path.lexists(ghost))
        self.assertEqual(os.listdir(outdir), [])
        for row, (size, seed) in zip(rows, [(2500, 8), (1500, 9)]):
            if row.outcome == "ok":
                self.assertNotIn(row.path, ("x.bin", "x.bin.part", "sub/y.bin"),
                                 row)
                p = os.path.join(d, row.path)
                self.assertEqual(os.path.realpath(p),
                                 os.path.join(os.path.realpath(d), row.path))
                self.assert_file(p, body(size, seed))
            else:
                self.assert_row(row, "failed")
        if any(r.outcome == "failed" for r in rows):
            self.assertEqual(state, "failed")
        else:
            self.assertEqual(state, "done")

    def outside_snapshot(self):
        """{path: (type, size, mtime, sha256)} of everything in self.tmp but
        spool/, dl/ and the logs."""
        skip = {os.path.join(self.tmp, s) for s in ("spool", "dl")}
        logs = {"fetchd.log", "httpd.log", "httpd.err"}
        snap = {}
        for dirpath, dirnames, files in os.walk(self.tmp):
            dirnames[:] = [x for x in dirnames
                           if os.path.join(dirpath, x) not in skip]
            for fn in files + dirnames:
                p = os.path.join(dirpath, fn)
                if dirpath == self.tmp and fn in logs:
                    continue
                st = os.lstat(p)
                digest, mtime = None, 0
                if stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        digest = sha256(f.read())
                    mtime = st.st_mtime_ns
                snap[p] = (stat.S_IFMT(st.st_mode), st.st_size, mtime, digest)
        return snap

    # 9
    def test_09_non_regular_entries_in_new(self):
        job_text = self.url("via-link.bin", key="klink") + "\n"
        target = os.path.join(self.tmp, "linked-job.txt")
        with open(target, "w") as f:
            f.write(job_text)
        tmpd = self.daemon.spool_path("tmp")
        os.symlink(target, os.path.join(tmpd, "slink"))
        os.mkfifo(os.path.join(tmpd, "fifo"))
        os.mkdir(os.path.join(tmpd, "dirjob"))
        with open(os.path.join(tmpd, "dirjob", "inner"), "w") as f:
            f.write(job_text)
        kinds = {"slink": stat.S_ISLNK, "fifo": stat.S_ISFIFO,
                 "dirjob": stat.S_ISDIR}
        for name in kinds:
            self.jobs.add(name)
            os.rename(os.path.join(tmpd, name),
                      self.daemon.spool_path("new", name))
        for name, is_kind in kinds.items():
            state, _ = self.wait_done(name)
            self.assertEqual(state, "failed", name)
            p = self.daemon.spool_path("failed", name)
            self.assertTrue(is_kind(os.lstat(p).st_mode), name)
            with open(p + ".result", "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            reason = [s for s in lines[1:] if s.strip()]
            self.assertTrue(reason, "%s.result gives no reason: %r"
                            % (name, lines))
        # Nobody holds the FIFO open for reading.
        with self.assertRaises(OSError) as cm:
            fd = os.open(self.daemon.spool_path("failed", "fifo"),
                         os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        self.assertEqual(cm.exception.errno, errno.ENXIO)
        with open(target) as f:
            self.assertEqual(f.read(), job_text)
        self.assertEqual(self.server.requests_for("klink"), [])
        self.assertTrue(self.daemon.running())
        u = self.url("normal.bin", size=999, seed=4)
        self.drop_job("jnormal", [u])
        state, rows = self.wait_done("jnormal")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, 999, 1, "normal.bin")

    # 10
    @config(workers={"count": 1, "per_host": 1})
    def test_10_kill9_mid_download_then_restart(self):
        slow = 200 * KIB
        specs = []  # (name, size, seed, key, extra params)
        for i in range(1, 21):
            if i == 11:
                specs.append(("u11.bin", slow, 11, "k11",
                              {"drip": 100 * KIB}))
            else:
                specs.append(("u%02d.bin" % i, 2000 + i, i, "k%02d" % i, {}))
        urls = [self.url(n, size=s, seed=seed, key=k, **extra)
                for n, s, seed, k, extra in specs]
        self.drop_job("jkill", urls)
        # The server logs a request when its response ends, so URL 11 being
        # under way shows as URLs 1-10 logged and bytes in u11.bin.part.
        first_ten = ["k%02d" % i for i in range(1, 11)]
        ft.wait_for(lambda: all(self.server.requests_for(k)
                                for k in first_ten),
                    10, "URLs 1-10 to be served", self.daemon.log_tail)
        part = os.path.join(self.job_dir("jkill"), "u11.bin.part")
        self.wait_file_size(part, 1)
        self.assertEqual(self.daemon.kill9(), -9)
        self.assertIn(("active", "jkill"), self.daemon.spool_entries("jkill"))
        resumed_from = os.stat(part).st_size
        self.assertGreater(resumed_from, 0)
        self.assertLess(resumed_from, slow)
        self.daemon.start()
        state, rows = self.wait_done("jkill", 30)
        self.assertEqual(state, "done")
        self.assertEqual([r.url for r in rows], urls)
        for row, (name, size, seed, key, _) in zip(rows, specs):
            self.assert_row(row, "ok", None, size, None, name)
            if key != "k11":
                self.assertEqual(row.attempts, 1, row)
            self.assert_file(os.path.join(self.job_dir("jkill"), name),
                             body(size, seed))
            reqs = self.server.requests_for(key)
            if key == "k11":
                self.assertEqual(len(reqs), 2, reqs)
                self.assertIsNone(reqs[0]["range"])
                self.assertEqual(range_start(reqs[1]["range"]), resumed_from,
                                 reqs[1])
                self.assertEqual(reqs[1]["status"], 206)
            else:
                self.assertEqual(len(reqs), 1, (key, reqs))
        self.assert_no_parts("jkill")
        ft.wait_for(lambda: not [e for e in self.daemon.spool_entries("jkill")
                                 if e[0] != "done"],
                    5, "jkill to leave every spool directory but done/",
                    self.daemon.spool_listing)
        self.assertEqual(self.daemon.spool_entries("jkill"),
                         [("done", "jkill"), ("done", "jkill.result")])

    # 11
    @no_daemon
    def test_11_config_test_mode(self):
        good = self.daemon.conf
        p = subprocess.run([ft.FETCHD, "-t", "-c", good], capture_output=True,
                           text=True, timeout=10 * ft.SCALE)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("test is successful", p.stdout)

        p = subprocess.run([ft.FETCHD, "-V"], capture_output=True, text=True,
                           timeout=10 * ft.SCALE)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"\d")

        bad = [
            ("unknown", {"daemon": {"no_such_key": "1"}}, ("daemon", "no_such_key")),
            ("count0", {"workers": {"count": 0}}, ("workers", "count")),
            ("model", {"workers": {"model": "bogus"}}, ("workers", "model")),
            ("perhost", {"workers": {"per_host": -1}}, ("workers", "per_host")),
            ("relative", {"daemon": {"download_dir": "dl"}},
             ("daemon", "download_dir")),
            ("retries", {"http": {"retries": "many"}}, ("http", "retries")),
        ]
        for what, override, where in bad:
            path = os.path.join(self.tmp, "bad-%s.conf" % what)
            lines = self.daemon.write_config(
                path, ft.merge_settings(self.daemon.settings, override))
            # Put the bad key after a few good ones, so the line number
            # cannot be right by accident.
            self.assertGreater(lines[where], 3)
            p = subprocess.run([ft.FETCHD, "-t", "-c", path],
                               capture_output=True, text=True,
                               timeout=10 * ft.SCALE)
            self.assertEqual(p.returncode, 1, (what, p.stdout, p.stderr))
            self.assertIn("%s:%d:" % (path, lines[where]), p.stderr,
                          what)
            self.assertNotIn("test is successful", p.stdout, what)

        # A daemon given a bad config does not start.
        path = os.path.join(self.tmp, "bad-unknown.conf")
        p = subprocess.run([ft.FETCHD, "-c", path], capture_output=True,
                           text=True, timeout=10 * ft.SCALE)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotRegex(p.stdout + p.stderr, r"\bready\b")

    # 12
    def test_12_job_written_straight_into_new(self):
        u1 = self.url("w1.bin", size=1111, seed=1, key="w1")
        u2 = self.url("w2.bin", size=2222, seed=2, key="w2")
        split = len(u2) // 2
        first = (u1 + "\n" + u2[:split]).encode()
        rest = (u2[split:] + "\n").encode()
        path = self.daemon.spool_path("new", "jdirect")
        self.jobs.add("jdirect")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, first)
            # While the writer holds it open, the job is not claimed.
            end = time.monotonic() + 0.4
            while time.monotonic() < end:
                self.assertTrue(os.path.exists(path), "claimed while open")
                self.assertEqual(self.daemon.spool_entries("jdirect"),
                                 [("new", "jdirect")])
                time.sleep(ft.POLL)
            os.write(fd, rest)
        finally:
            os.close(fd)
        state, rows = self.wait_done("jdirect")
        self.assertEqual(state, "done")
        self.assertEqual([r.url for r in rows], [u1, u2])
        self.assert_row(rows[0], "ok", 200, 1111, 1, "w1.bin")
        self.assert_row(rows[1], "ok", 200, 2222, 1, "w2.bin")
        self.assert_file(os.path.join(self.job_dir("jdirect"), "w2.bin"),
                         body(2222, 2))

    # 13
    def test_13_pickup_latency(self):
        lat = []
        for i in range(3):
            key = "lat%d" % i
            t = self.drop_job("jlat%d" % i, [self.url("l.bin", size=10,
                                                      key=key)])
            req = self.server.wait_requests(key, 1, timeout=5)[0]
            lat.append(req["time"] - t)
            state, _ = self.wait_done("jlat%d" % i)
            self.assertEqual(state, "done")
        sys.stderr.write("pick-up latency: %s ms ... " % ", ".join(
            "%.1f" % (x * 1000) for x in lat))
        for x in lat:
            self.assertGreater(x, -0.05)
            self.assertLess(x, 0.5 * ft.SCALE)

    # 14
    @config(daemon={"shutdown_grace": 1})
    def test_14_sigterm_during_slow_download(self):
        size = 300 * KIB
        u = self.url("slow.bin", size=size, seed=14, drip=100 * KIB,
                     key="kslow")
        self.drop_job("jterm", [u])
        part = os.path.join(self.job_dir("jterm"), "slow.bin.part")
        self.wait_file_size(part, 1)
        t = time.monotonic()
        rc = self.daemon.stop(timeout=1 + 5)
        self.assertEqual(rc, 0, self.daemon.log_tail())
        self.assertLess(time.monotonic() - t, (1 + 5) * ft.SCALE)
        kept = os.stat(part).st_size
        self.assertGreater(kept, 0)
        self.assertLess(kept, size)
        entries = self.daemon.spool_entries("jterm")
        self.assertIn(("active", "jterm"), entries)
        self.assertEqual([e for e in entries if e[0] != "active"], [])
        self.daemon.start()
        state, rows = self.wait_done("jterm", 30)
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", None, size, None, "slow.bin")
        self.assert_file(os.path.join(self.job_dir("jterm"), "slow.bin"),
                         body(size, 14))
        reqs = self.server.requests_for("kslow")
        self.assertEqual(len(reqs), 2, reqs)
        self.assertEqual(range_start(reqs[1]["range"]), kept, reqs[1])
        self.assertEqual(reqs[1]["status"], 206)

    # 15
    def test_15_duplicate_names_in_a_job(self):
        a1 = self.url("a.bin", size=1000, seed=1)
        b = self.url("a.bin", size=2000, seed=2)
        self.drop_job("jdup", [a1, a1, b])
        state, rows = self.wait_done("jdup")
        self.assertEqual(state, "done")
        self.assertEqual([r.url for r in rows], [a1, a1, b])
        self.assertEqual(sorted(r.path for r in rows),
                         ["a.1.bin", "a.2.bin", "a.bin"])
        for row, (size, seed) in zip(rows, [(1000, 1), (1000, 1), (2000, 2)]):
            self.assert_row(row, "ok", 200, size, 1)
            self.assert_file(os.path.join(self.job_dir("jdup"), row.path),
                             body(size, seed))
        self.assertEqual(self.job_files("jdup"),
                         {"a.bin", "a.1.bin", "a.2.bin"})

    # 16
    @config(http={"retries": 2, "retry_delay": 0})
    def test_16_retry_after_is_honoured(self):
        u = self.url("ra.bin", size=600, seed=16, status="503,200",
                     retry_after=1, key="kra")
        self.drop_job("jra", [u])
        state, rows = self.wait_done("jra")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, 600, 2, "ra.bin")
        reqs = self.server.requests_for("kra")
        self.assertEqual([r["status"] for r in reqs], [503, 200])
        gap = reqs[1]["time"] - reqs[0]["time"]
        self.assertGreaterEqual(gap, 0.9, "retried %.3f s after 503 with "
                                "Retry-After: 1" % gap)

    # 17
    @config(http={"max_file_size": 1000})
    def test_17_max_file_size(self):
        big = self.url("big.bin", size=5000, key="kbig")
        fits = self.url("fits.bin", size=1000, seed=17)
        self.drop_job("jmax", [big, fits])
        state, rows = self.wait_done("jmax")
        self.assertEqual(state, "failed")
        self.assert_row(rows[0], "failed")
        self.assert_row(rows[1], "ok", 200, 1000, 1, "fits.bin")
        d = self.job_dir("jmax")
        self.assertFalse(os.path.lexists(os.path.join(d, "big.bin")))
        self.assert_file(os.path.join(d, "fits.bin"), body(1000, 17))

    # 18
    def test_18_five_hundred_urls(self):
        n = 500
        specs = [("f%03d.bin" % i, 100 + i % 200, i % 251) for i in range(n)]
        urls = [self.url("m/" + name, size=size, seed=seed)
                for name, size, seed in specs]
        self.drop_job("jmany", urls)
        state, rows = self.wait_done("jmany", 60)
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), n)
        self.assertEqual([r.url for r in rows], urls)
        d = self.job_dir("jmany")
        for row, (name, size, seed) in zip(rows, specs):
            self.assert_row(row, "ok", 200, size, 1, name)
            self.assert_file(os.path.join(d, name), body(size, seed))
        served = [r for r in self.server.log() if r["path"].startswith("/f/m/")]
        self.assertEqual(len(served), n)
        self.assertEqual(self.job_files("jmany"), {s[0] for s in specs})

    @config(workers={"count": 2, "per_host": 0})
    def test_19_small_job_not_starved_by_a_large_one(self):
        """Fairness between jobs: a 3-URL job dropped after a 300-URL job
        (each URL 50 ms) finishes while most of the large one is still to
        do, instead of waiting behind it."""
        big = [self.url("big/b%03d.bin" % i, size=64, delay=50)
               for i in range(300)]
        small = [self.url("small/s%d.bin" % i, size=64, delay=50)
                 for i in range(3)]
        self.drop_job("jbig", big)
        ft.wait_for(lambda: len(self.server.log()) >= 4, 20,
                    "the large job to start")
        self.drop_job("jsmall", small)
        state, rows = self.wait_done("jsmall", 30)
        self.assertEqual(state, "done")
        served_big = [r for r in self.server.log()
                      if r["path"].startswith("/f/big/")]
        self.assertLess(len(served_big), 150,
                        "the small job waited behind the large one")
        state, rows = self.wait_done("jbig", 60)
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), 300)

    @config(workers={"count": 4, "per_host": 0})
    def test_20_repeated_kill9_loses_nothing_and_repeats_nothing(self):
        """kill -9 at several instants of one job (between claims, mid
        transfer, between a file's rename and its result), restarting each
        time: the job completes once, every file byte-exact, and a URL whose
        file was complete on disk at a kill is never requested again."""
        specs = []
        for i in range(60):
            size = (3 + i % 5) * 7 * KIB + i
            extra = {"drip": 96 * KIB} if i % 3 == 0 else {}
            specs.append(("r%02d.bin" % i, size, i, "kr%02d" % i, extra))
        urls = [self.url(n, size=s, seed=seed, key=k, **extra)
                for n, s, seed, k, extra in specs]
        key_of = {n: k for n, _, _, k, _ in specs}
        self.drop_job("jcrash", urls)
        keys = list(key_of.values())
        d = self.job_dir("jcrash")
        frozen = {}     # key -> requests seen when its file was complete
        kills = 0
        for round_ in range(5):
            want = sum(1 for k in keys if self.server.requests_for(k)) + 6
            ft.wait_for(lambda: sum(1 for k in keys
                                    if self.server.requests_for(k)) >= want
                        or self.daemon.finished("jcrash"),
                        30, "progress before kill %d" % round_)
            if self.daemon.finished("jcrash"):
                break
            self.assertEqual(self.daemon.kill9(), -9)
            kills += 1
            for name in os.listdir(d):
                if name in key_of and name not in frozen:
                    frozen[key_of[name]] = len(
                        self.server.requests_for(key_of[name]))
            self.daemon.start()
        self.assertGreaterEqual(kills, 2, "the job finished too early")
        state, rows = self.wait_done("jcrash", 60)
        self.assertEqual(state, "done")
        self.assertEqual([r.url for r in rows], urls)
        for row, (name, size, seed, key, _) in zip(rows, specs):
            self.assert_row(row, "ok", None, size, None, name)
            self.assert_file(os.path.join(d, name), body(size, seed))
        self.assertTrue(frozen, "no file was complete at any kill")
        for key, seen in frozen.items():
            self.assertEqual(len(self.server.requests_for(key)), seen,
                             "%s was fetched again after its file was "
                             "complete" % key)
        self.assertEqual(self.job_files("jcrash"), {s[0] for s in specs})
        self.assertEqual(self.daemon.spool_entries("jcrash"),
                         [("done", "jcrash"), ("done", "jcrash.result")])

    # 21
    @config(daemon={"shutdown_grace": 10})
    def test_21_sigterm_lets_the_last_transfer_finish_the_job(self):
        """SIGTERM while a job's last transfer runs and ends within the
        grace period: the job is finished (in done/ with every row) before
        the daemon exits, not left in active/."""
        size = 40 * KIB
        fast = [self.url("t%d.bin" % i, size=1000 + i, seed=i)
                for i in range(3)]
        slow = self.url("tslow.bin", size=size, seed=21, drip=100 * KIB)
        self.drop_job("jlast", fast + [slow])
        part = os.path.join(self.job_dir("jlast"), "tslow.bin.part")
        self.wait_file_size(part, 1)
        self.assertEqual(self.daemon.stop(), 0, self.daemon.log_tail())
        self.assertEqual(self.daemon.spool_entries("jlast"),
                         [("done", "jlast"), ("done", "jlast.result")])
        state, res = self.daemon.finished("jlast")
        self.assertEqual(state, "done")
        rows = ft.parse_result(res)
        self.assertEqual([r.url for r in rows], fast + [slow])
        for row in rows:
            self.assertEqual(row.outcome, "ok", row)
        self.assert_file(os.path.join(self.job_dir("jlast"), "tslow.bin"),
                         body(size, 21))

    # 22
    def test_22_names_in_a_new_job_directory(self):
        """A job's names in a directory it made itself: a name used before
        (or one of its directories) is never handed out again, also when
        the earlier URL's file is complete and no longer in flight."""
        a = self.url("a.bin", size=700, seed=1)
        b = self.url("b.bin", size=800, seed=2)
        c = self.url("c.bin", size=900, seed=3)
        lines = [a + " out=d/x.bin", b + " out=d", c + " out=d/x.bin",
                 a, b + " out=a.bin"]
        self.drop_job("jnames", lines)
        state, rows = self.wait_done("jnames")
        self.assertEqual(state, "done")
        self.assertEqual([r.path for r in rows],
                         ["d/x.bin", "d.1", "d/x.1.bin", "a.bin", "a.1.bin"])
        for row, (size, seed) in zip(rows, [(700, 1), (800, 2), (900, 3),
                                            (700, 1), (800, 2)]):
            self.assert_row(row, "ok", 200, size, 1)
            self.assert_file(os.path.join(self.job_dir("jnames"), row.path),
                             body(size, seed))

    # 23
    @config(http={"retries": 2, "retry_delay": 3, "retry_max_delay": 3})
    def test_23_hard_link_planted_at_part_between_attempts(self):
        """Between two attempts each .part is replaced by a hard link to a
        file outside download_dir (issue 12, hole 2). The retry neither
        appends to it (Range honoured) nor truncates and rewrites it (Range
        ignored): it starts a fresh .part, and nothing outside changes."""
        size, at = 60 * KIB, 20000
        cases = [("h.bin", 1, "khl"), ("n.bin", 0, "khl0")]
        urls = [self.url(n, size=size, seed=23, truncate=at, range=r, key=k)
                for n, r, k in cases]
        victims = []
        for n, _, _ in cases:
            v = os.path.join(self.tmp, "victim-" + n)
            with open(v, "wb") as f:
                f.write(b"not fetchd's file\n")
            victims.append(v)
        before = self.outside_snapshot()
        logged_after = [time.monotonic()] * len(cases)
        planted = [False] * len(cases)
        self.drop_job("jhl", urls)
        d = self.job_dir("jhl")

        def plant():
            """Plant each link as soon as its retry is scheduled, and prove
            it went in before the retry: the retry is due `delay` s after
            its log line, which was written after logged_after[i]."""
            now = time.monotonic()
            log = self.daemon.log_text()
            for i, ((name, _, _), victim) in enumerate(zip(cases, victims)):
                m = re.search(r"job jhl #%d: .*; attempt 2 in ([0-9.]+)s"
                              % i, log)
                if planted[i]:
                    continue
                if not m:
                    logged_after[i] = now
                    continue
                part = os.path.join(d, name + ".part")
                self.assertEqual(os.lstat(part).st_size, at)
                os.unlink(part)
                os.link(victim, part)
                self.assertLess(time.monotonic(),
                                logged_after[i] + float(m.group(1)) - 0.2,
                                "%s planted too late to precede its retry"
                                % name)
                planted[i] = True
            return all(planted)
        ft.wait_for(plant, 10, "the retries to be scheduled",
                    self.daemon.log_tail)
        state, rows = self.wait_done("jhl", 30)
        self.assertEqual(state, "done")
        for row, (name, _, key) in zip(rows, cases):
            self.assert_row(row, "ok", 200, size, 2, name)
            self.assert_file(os.path.join(d, name), body(size, 23))
            reqs = self.server.requests_for(key)
            self.assertEqual(len(reqs), 2, reqs)
            self.assertIsNone(reqs[1]["range"], "resumed into the link")
        self.assertEqual(self.outside_snapshot(), before,
                         "written outside download_dir")
        for v in victims:
            self.assertEqual(os.lstat(v).st_nlink, 1)
        self.assertEqual(self.job_files("jhl"), {n for n, _, _ in cases})

    # 24
    @config(http={"retries": 2})
    def test_24_symlink_swapped_in_at_part_during_transfer(self):
        """While a transfer runs its .part is replaced by a symlink to a
        file outside download_dir (issue 12, hole 3). The symlink is never
        published as the file: the attempt fails, saying so, and the retry
        fetches the file afresh."""
        size = 200 * KIB
        u = self.url("s.bin", size=size, seed=24, drip=100 * KIB, key="kswap")
        victim = os.path.join(self.tmp, "victim-s.bin")
        with open(victim, "wb") as f:
            f.write(b"not fetchd's file\n")
        before = self.outside_snapshot()
        self.drop_job("jswap", [u])
        part = os.path.join(self.job_dir("jswap"), "s.bin.part")
        self.wait_file_size(part, 1)
        os.unlink(part)
        os.symlink(victim, part)
        # The server logs a request when its response ends: none logged now
        # means the transfer was still running when the symlink went in.
        self.assertEqual(self.server.requests_for("kswap"), [],
                         "swapped too late: the transfer had ended")
        state, rows = self.wait_done("jswap", 30)
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", 200, size, 2, "s.bin")
        self.assert_file(os.path.join(self.job_dir("jswap"), "s.bin"),
                         body(size, 24))
        self.assertEqual(self.job_files("jswap"), {"s.bin"})
        self.assertEqual(self.outside_snapshot(), before,
                         "written outside download_dir")
        self.assertIn("s.bin.part' was replaced during the transfer",
                      self.daemon.log_text())
        reqs = self.server.requests_for("kswap")
        self.assertEqual(len(reqs), 2, reqs)
        self.assertIsNone(reqs[1]["range"])

if __name__ == "__main__":
    ft.main()
