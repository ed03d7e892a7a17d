#!/usr/bin/env python3
"""
e2e_control.py: end-to-end tests of the control socket, the live stats and
fetchctl. The real fetchd (FETCHD) fetches from tests/httpd.py on 127.0.0.1
and the tests talk to it through fetchctl (FETCHCTL) and through the raw
socket, as a script or socat would.

    FETCHD=src/fetchd FETCHCTL=src/fetchctl python3 tests/e2e_control.py -v

Covered: exact counters after known jobs; rates during a slowed download
and their decay after it; latency percentiles against the delays the test
server injected; watch (plain lines, a terminal, JSON); submit (validation
at the prompt, atomic hand-off of a large job, stdin, --name); peer
credentials (a non-member is refused, group members are not); garbage,
oversized, half-sent requests, 1,000 connect/close cycles and vanishing
watchers, after which the daemon still serves and downloads with its
descriptors back to where they were; the connection cap; a second daemon on
the same spool or socket; stale sockets; "not running"; pause, resume,
cancel, reload; Prometheus text from fetchctl and from metrics_listen.
"""

import json
import os
import pty
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import (FetchdTestCase, body, config, no_daemon,  # noqa: E402
                        wait_for)

FETCHCTL = ft.FETCHCTL
HALF_BUCKET = 2 ** (0.5 / 8) - 1        # stats.h: 8 buckets per doubling
LINE_MAX = 4096                         # proto.h: PROTO_LINE_MAX
IDLE_TIMEOUT = 10                       # control.h: CONTROL_IDLE_TIMEOUT
CLIENTS_MAX = 1024                      # control.h: CONTROL_CLIENTS_MAX
NOT_RUNNING, DENIED, USAGE = 3, 4, 2    # fetchctl exit statuses
NOT_CLUSTER = 5


def built_with_systemd():
    """HAVE_SYSTEMD in the build.h of the build FETCHD comes from."""
    top = os.path.dirname(os.path.dirname(os.path.abspath(ft.FETCHD)))
    try:
        with open(os.path.join(top, "build.h")) as f:
            return re.search(r"^#define HAVE_SYSTEMD 1$", f.read(),
                             re.M) is not None
    except OSError:
        return False


def read_line(sock, timeout=10):
    """One reply line from sock (bytes, without the newline); b"" at EOF."""
    sock.settimeout(timeout * ft.SCALE)
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    return buf[:-1]


def read_to_end(sock, timeout=10):
    """Everything until EOF; a reset after data counts as the end too."""
    sock.settimeout(timeout * ft.SCALE)
    buf = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return buf, "reset"
        if not chunk:
            return buf, "eof"
        buf += chunk


def unix_paths():
    """inode -> path of every named Unix socket (accepted connections carry
    the name of the socket they were accepted on)."""
    paths = {}
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8:
                paths[parts[6]] = parts[7]
    return paths


def fd_profile(pid, sockpath):
    """(descriptors on the control socket, the listener included; other
    sockets; everything else) open in pid."""
    paths = unix_paths()
    c = o = n = 0
    d = "/proc/%d/fd" % pid
    for e in os.listdir(d):
        try:
            target = os.readlink(os.path.join(d, e))
        except FileNotFoundError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m and paths.get(m.group(1)) == sockpath:
            c += 1
        elif m:
            o += 1
        else:
            n += 1
    return c, o, n


class ControlTestCase(FetchdTestCase):
    """FetchdTestCase plus fetchctl and raw-socket helpers."""

    def setUp(self):
        if not FETCHCTL:
            raise unittest.SkipTest("FETCHCTL is not set")
        super().setUp()

    # -- fetchctl ----------------------------------------------------------

    def ctl(self, *args, sock=True, user=None, group=None, groups=None,
            env=None, stdin=None, timeout=30, binary=None):
        """Run fetchctl (with -s SOCKET unless sock is False); returns
        (status, stdout, stderr) as text."""
        cmd = [binary or FETCHCTL]
        if sock:
            cmd += ["-s", self.daemon.socket]
        cmd += list(args)
        if user is not None:
            pre = ["runuser", "-u", user]
            if group is not None:
                pre += ["-g", group]
            if groups is not None:
                pre += ["-G", groups]
            cmd = pre + ["--"] + cmd
        e = dict(os.environ)
        e.pop("FETCHD_SOCKET", None)
        e.update(env or {})
        p = subprocess.run(cmd, input=stdin, capture_output=True, env=e,
                           timeout=timeout * ft.SCALE)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def ctl_ok(self, *args, **kw):
        rc, out, err = self.ctl(*args, **kw)
        self.assertEqual(rc, 0, "fetchctl %s: status %d\nstdout: %s\n"
                         "stderr: %s" % (" ".join(args), rc, out, err))
        return out

    # -- the raw socket ------------------------------------------------------

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10 * ft.SCALE)
        s.connect(self.daemon.socket)
        return s

    def query(self, line):
        """Send one request, return the parsed reply (and check "proto")."""
        s = self.connect()
        try:
            s.sendall(line.encode() + b"\n")
            raw = read_line(s)
        finally:
            s.close()
        self.assertTrue(raw, "no reply to %r" % line)
        obj = json.loads(raw)
        self.assertEqual(obj.get("proto"), 1, raw)
        return obj

    def stats(self):
        st = self.query("stats")
        self.assertNotIn("error", st)
        return st

    def jobs_obj(self):
        return self.query("jobs")

    def submit_job(self, name, lines):
        """Drop a job (recorded for the download_dir check)."""
        self.drop_job(name, lines)

    def fds(self):
        return fd_profile(self.daemon.pid, self.daemon.socket)


class TestStats(ControlTestCase):
    """What the stats object says about known work."""

    def test_exact_counters(self):
        sizes = [0, 1, 1000, 65536, 1048576 + 7]
        lines = [self.url("c%d.bin" % i, size=n, seed=i)
                 for i, n in enumerate(sizes)]
        # A 503 first, then the file: one retry, the body of the 503 is
        # not counted as file bytes.
        lines.append(self.url("r.bin", size=777, status="503,200", key="r"))
        self.submit_job("good", lines)
        self.submit_job("bad", [self.url("missing.bin", status=404),
                                self.url("fine.bin", size=5)])
        self.assertEqual(self.wait_done("good")[0], "done")
        self.assertEqual(self.wait_done("bad")[0], "failed")
        st = self.stats()
        self.assertEqual(st["bytes_total"], sum(sizes) + 777 + 5)
        self.assertEqual(st["urls_total"], len(sizes) + 1 + 2)
        tr = st["transfers"]
        self.assertEqual(tr["done"], len(sizes) + 2)
        self.assertEqual(tr["failed"], 1)
        self.assertEqual(tr["retried"], 1)
        self.assertEqual(tr["active"], 0)
        self.assertEqual(tr["queued"], 0)
        self.assertEqual(tr["errors"]["http_4xx"], 1)
        self.assertEqual(tr["errors"]["http_5xx"], 1)
        self.assertEqual(sum(tr["errors"].values()), 2)
        self.assertEqual(st["jobs"], {"queued": 0, "active": 0, "done": 1,
                                      "failed": 1, "waiting": 0})
        self.assertEqual(st["model"], ft.MODEL)
        self.assertIs(st["paused"], False)
        # Every attempt that got a response has its latency recorded.
        self.assertEqual(st["latency_ms"]["ttfb"]["count"],
                         len(sizes) + 2 + 2)
        self.assertGreaterEqual(st["uptime_s"], 0)
        self.assertGreater(st["process"]["rss_bytes"], 0)
        # fetchctl's table shows the same figures.
        out = self.ctl_ok("stats")
        self.assertIn("%d done, 1 failed, 1 retried" % (len(sizes) + 2), out)
        self.assertIn("in %d URLs" % (len(sizes) + 3), out)
        self.assertIn("http_4xx 1", out)
        self.assertIn("http_5xx 1", out)

    def test_rates_follow_a_slow_download(self):
        # About 3 s at 100 kB/s.
        self.submit_job("slow", [self.url("slow.bin", size=300000,
                                          drip=100000)])

        def busy():
            st = self.stats()
            if self.daemon.finished("slow"):
                raise AssertionError("the download ended before the rate "
                                     "was seen: %r" % st["rate"])
            r = st["rate"]["1s"]["bytes_per_s"]
            return st if r > 0 else None
        st = wait_for(busy, 10, "a non-zero 1 s rate during the download")
        self.assertEqual(st["transfers"]["active"], 1)
        self.assertEqual(st["process"]["workers_busy"], 1)
        self.assertGreater(st["rate"]["1s"]["bytes_per_s"], 20000)
        self.assertLess(st["rate"]["1s"]["bytes_per_s"], 400000)
        self.assertEqual(self.wait_done("slow")[0], "done")

        # The 1 s window empties within a couple of seconds, while the
        # 10 s and 60 s windows still remember the download.
        st = wait_for(lambda: (lambda s: s if s["rate"]["1s"]["bytes_per_s"]
                               == 0 else None)(self.stats()),
                      5, "the 1 s rate to fall to 0")
        self.assertGreater(st["rate"]["10s"]["bytes_per_s"], 0)
        self.assertGreater(st["rate"]["60s"]["bytes_per_s"], 0)
        self.assertEqual(st["rate"]["1s"]["urls_per_s"], 0)
        # Then the 10 s window; the minute still holds it.
        st = wait_for(lambda: (lambda s: s if s["rate"]["10s"]["bytes_per_s"]
                               == 0 else None)(self.stats()),
                      15, "the 10 s rate to fall to 0")
        self.assertGreater(st["rate"]["60s"]["bytes_per_s"], 0)
        self.assertEqual(st["bytes_total"], 300000)

    def test_latency_percentiles(self):
        lines = [self.url("fast%d.bin" % i, size=100, delay=100)
                 for i in range(20)]
        lines += [self.url("slow%d.bin" % i, size=100, delay=800)
                  for i in range(2)]
        self.submit_job("lat", lines)
        self.assertEqual(self.wait_done("lat")[0], "done")
        lat = self.stats()["latency_ms"]
        ttfb, total = lat["ttfb"], lat["total"]
        self.assertEqual(ttfb["count"], 22)
        # ms: loopback and the server's own scheduling (more on slow hosts)
        slack = 40 * ft.SCALE
        # 20 of 22 took 100 ms: the median and p90 are the fast ones, p99
        # is a slow one; each within half a histogram bucket.
        for q in ("p50", "p90"):
            self.assertGreaterEqual(ttfb[q], 100 / (1 + HALF_BUCKET), lat)
            self.assertLessEqual(ttfb[q], 100 * (1 + HALF_BUCKET) + slack,
                                 lat)
        self.assertGreaterEqual(ttfb["p99"], 800 / (1 + HALF_BUCKET), lat)
        self.assertLessEqual(ttfb["p99"], 800 * (1 + HALF_BUCKET) + slack,
                             lat)
        self.assertGreaterEqual(ttfb["max"], 800, lat)
        self.assertLess(ttfb["max"], 800 + 100 * ft.SCALE, lat)
        self.assertGreaterEqual(total["p50"], 100 / (1 + HALF_BUCKET), lat)
        self.assertGreaterEqual(total["max"], ttfb["max"], lat)

    def test_stats_json_passthrough_and_table(self):
        out = self.ctl_ok("--json", "stats")
        self.assertEqual(out.count("\n"), 1)
        st = json.loads(out)
        self.assertEqual(st["proto"], 1)
        for k in ("model", "workers", "uptime_s", "paused", "jobs",
                  "transfers", "bytes_total", "urls_total", "rate",
                  "latency_ms", "process"):
            self.assertIn(k, st)
        # Options may also follow the command.
        self.assertEqual(json.loads(self.ctl_ok("stats", "--json"))["proto"],
                         1)
        out = self.ctl_ok("stats")
        for word in ("throughput", "transfers", "jobs", "ttfb ms",
                     "process", ft.MODEL):
            self.assertIn(word, out)

    def test_stats_cluster_without_cluster_mode(self):
        """stats --cluster of a daemon not in cluster mode: said on
        stderr, nothing on stdout, status 5, --json or not; plain stats
        has no cluster line."""
        for args in (["stats", "--cluster"], ["--json", "stats", "--cluster"],
                     ["--cluster", "stats"]):
            rc, out, err = self.ctl(*args)
            self.assertEqual(rc, NOT_CLUSTER, "%r: %s %s" % (args, out, err))
            self.assertEqual(out, "")
            self.assertIn("not in cluster mode", err)
        self.assertNotIn("\ncluster ", self.ctl_ok("stats"))
        self.assertNotIn("cluster", self.stats())

    def test_prometheus(self):
        self.submit_job("p", [self.url("p%d.bin" % i, size=1000 + i)
                              for i in range(3)])
        self.wait_done("p")
        text = self.ctl_ok("stats", "--prometheus")
        st = self.stats()
        self.check_prometheus(text, st)

    def check_prometheus(self, text, st):
        types = {}
        samples = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                types[name] = typ
                continue
            if line.startswith("# HELP "):
                self.assertTrue(line.startswith("# HELP fetchd_"), line)
                continue
            m = re.match(r"^(fetchd_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
            self.assertTrue(m, "not a sample line: %r" % line)
            samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
            base = re.sub(r"_(sum|count|bucket)$", "", m.group(1))
            self.assertTrue(m.group(1) in types or base in types,
                            "no TYPE for %s" % line)
        for name, typ in types.items():
            self.assertTrue(name.startswith("fetchd_"), name)
            if typ == "counter":
                self.assertTrue(name.endswith("_total"), name)
        self.assertEqual(types["fetchd_latency_ttfb_seconds"], "summary")
        self.assertEqual(samples["fetchd_bytes_total"], 3003)
        self.assertEqual(samples["fetchd_urls_total"], 3)
        self.assertEqual(samples["fetchd_transfers_done_total"], 3)
        self.assertEqual(samples['fetchd_transfer_errors_total{kind="dns"}'],
                         0)
        self.assertIn('fetchd_latency_ttfb_seconds{quantile="0.99"}', samples)
        self.assertEqual(samples["fetchd_latency_ttfb_seconds_count"], 3)
        self.assertAlmostEqual(
            samples['fetchd_latency_ttfb_seconds{quantile="0.5"}'],
            st["latency_ms"]["ttfb"]["p50"] / 1000, places=6)
        self.assertIn('fetchd_rate_bytes_per_second{window="60s"}', samples)
        self.check_histograms(text, types, samples)
        self.assertNotIn("fetchd_cluster", text)

    def check_histograms(self, text, types, samples):
        """Each latency is also a histogram: cumulative buckets in rising
        order, le="+Inf" last and equal to _count, _sum as the summary's."""
        for which in ("ttfb", "total"):
            name = "fetchd_latency_%s_histogram_seconds" % which
            self.assertEqual(types[name], "histogram")
            buckets = re.findall(r'^%s_bucket\{le="([^"]+)"\} (\S+)$'
                                 % name, text, re.M)
            self.assertGreater(len(buckets), 10, buckets)
            self.assertEqual(buckets[-1][0], "+Inf")
            les = [float(le) for le, _ in buckets]
            counts = [float(n) for _, n in buckets]
            self.assertEqual(les, sorted(les))
            self.assertEqual(len(set(les)), len(les))
            self.assertEqual(counts, sorted(counts))
            self.assertEqual(counts[-1], samples[name + "_count"])
            self.assertEqual(counts[-1], 3)
            self.assertAlmostEqual(
                samples[name + "_sum"],
                samples["fetchd_latency_%s_seconds_sum" % which], places=6)

    def test_metrics_endpoint(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.daemon.stop()
        self.daemon.settings["daemon"]["metrics_listen"] = \
            "127.0.0.1:%d" % port
        self.daemon.write_config()
        self.daemon.start()
        self.submit_job("p", [self.url("p%d.bin" % i, size=1000 + i)
                              for i in range(3)])
        self.wait_done("p")
        base = "http://127.0.0.1:%d" % port
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["Content-Type"].startswith(
                "text/plain; version=0.0.4"))
            text = r.read().decode()
        self.check_prometheus(text, self.stats())
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(base + "/other", timeout=5)
        self.assertEqual(cm.exception.code, 404)


class TestCommands(ControlTestCase):
    """ping, jobs, pause, resume, cancel, reload, watch; usage."""

    def test_ping_and_every_reply_carries_proto(self):
        out = self.ctl_ok("ping")
        self.assertRegex(out, r"^fetchd \S+ is running \(pid %d\)\n$"
                         % self.daemon.pid)
        p = self.query("ping")
        self.assertIs(p["pong"], True)
        self.assertEqual(p["pid"], self.daemon.pid)
        for req in ("stats", "jobs", "pause", "resume", "cancel nosuch",
                    "frobnicate", "watch 1", "ping extra"):
            self.query(req)         # asserts "proto": 1
        self.assertIn("error", self.query("cancel nosuch"))
        self.assertIn("error", self.query("ping extra"))

    def test_usage(self):
        for args in ([], ["bogus"], ["cancel"], ["cancel", "a", "b"],
                     ["watch", "5"], ["watch", "x"], ["stats", "extra"],
                     ["--prometheus", "jobs"], ["submit"], ["--nope"],
                     ["--cluster", "jobs"], ["ping", "--cluster"],
                     ["--prometheus", "stats", "--cluster"],
                     ["submit", "--cluster", "f"]):
            rc, out, err = self.ctl(*args)
            self.assertEqual(rc, USAGE, "%r: %s %s" % (args, out, err))
            self.assertEqual(out, "")
            self.assertTrue(err.startswith("fetchctl: ")
                            or err.startswith("usage: "), err)
        rc, out, err = self.ctl("-h", sock=False)
        self.assertEqual(rc, 0)
        for word in ("exit status", "3 fetchd is not running",
                     "4 permission denied", "5 stats --cluster", "submit",
                     "watch", "stats --cluster"):
            self.assertIn(word, out)

    def test_jobs_listing(self):
        self.submit_job("big", [self.url("b.bin", size=2000000,
                                         drip=200000)])
        wait_for(lambda: any(j["name"] == "big" and j["state"] == "running"
                             and j["running"] == 1
                             for j in self.jobs_obj()["active"]),
                 10, "the job to run")
        out = self.ctl_ok("jobs")
        self.assertRegex(out, r"(?m)^big +running +1 +0 +0 +1 ")
        j = json.loads(self.ctl_ok("--json", "jobs"))
        self.assertEqual(j["proto"], 1)
        self.assertEqual([a["name"] for a in j["active"]], ["big"])
        self.assertEqual(j["queued"]["count"], 0)
        self.ctl_ok("cancel", "big")
        self.assertEqual(self.wait_done("big")[0], "failed")
        j = self.jobs_obj()
        self.assertEqual(j["active"], [])
        self.assertEqual(j["failed"], {"count": 1, "recent": ["big"]})
        self.assertIn("failed: 1 (latest: big)", self.ctl_ok("jobs"))

    def test_pause_and_resume(self):
        self.assertIn("paused", self.ctl_ok("pause"))
        st = self.stats()
        self.assertIs(st["paused"], True)
        self.assertIn("PAUSED", self.ctl_ok("stats"))
        self.submit_job("held", [self.url("h%d.bin" % i, size=10)
                                 for i in range(3)])
        # Validated and queued, but nothing starts.
        wait_for(lambda: self.stats()["transfers"]["queued"] == 3, 10,
                 "three transfers queued")
        st = self.stats()
        self.assertEqual(st["transfers"]["active"], 0)
        self.assertEqual(st["jobs"]["active"], 1)
        self.assertEqual([r for r in self.server.log()
                          if r["path"].startswith("/f/")], [])
        self.ctl_ok("resume")
        self.assertIs(self.stats()["paused"], False)
        self.assertEqual(self.wait_done("held")[0], "done")

    def test_cancel(self):
        self.submit_job("long", [self.url("l1.bin", size=10000000,
                                          drip=50000),
                                 self.url("l2.bin", hang=1)])
        wait_for(lambda: self.stats()["transfers"]["active"] == 2, 10,
                 "both transfers to run")
        out = self.ctl_ok("cancel", "long")
        self.assertEqual(out, "cancelled long\n")
        state, rows = self.wait_done("long")
        self.assertEqual(state, "failed")
        self.assertEqual(len(rows), 2)
        for r in rows:
            self.assert_row(r, "failed")
            self.assertIn("cancelled", r.error)
        self.assert_no_parts("long")
        rc, out, err = self.ctl("cancel", "long")
        self.assertEqual(rc, 1)
        self.assertIn("no such job: long", err)

    def test_cancel_while_paused(self):
        self.ctl_ok("pause")
        self.submit_job("q", [self.url("q%d.bin" % i) for i in range(4)])
        wait_for(lambda: self.stats()["transfers"]["queued"] == 4, 10,
                 "four transfers queued")
        self.ctl_ok("cancel", "q")
        state, rows = self.wait_done("q")
        self.assertEqual(state, "failed")
        self.assertEqual([r.error for r in rows], ["cancelled"] * 4)
        self.ctl_ok("resume")

    def test_reload(self):
        out = self.ctl_ok("reload")
        self.assertIn("reloaded", out)
        wait_for(lambda: "configuration reloaded" in self.daemon.log_text(),
                 5, "the reload in the log")
        # A bad file changes nothing and says why.
        with open(self.daemon.conf) as f:
            good = f.read()
        with open(self.daemon.conf, "a") as f:
            f.write("[daemon]\nbogus_key = 1\n")
        rc, out, err = self.ctl("reload")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("reload:", err)
        self.assertIn("bogus_key", err)
        with open(self.daemon.conf, "w") as f:
            f.write(good)
        # A new worker count applies (a new engine).
        self.daemon.settings["workers"]["count"] = 3
        self.daemon.write_config()
        self.ctl_ok("reload")
        self.assertEqual(self.stats()["workers"], 3)
        self.submit_job("after", [self.url("a.bin", size=123)])
        self.assertEqual(self.wait_done("after")[0], "done")

    def watch_lines(self, proc, n, timeout=10):
        lines = []
        end = time.monotonic() + timeout * ft.SCALE
        buf = b""
        while len(lines) < n:
            left = end - time.monotonic()
            self.assertGreater(left, 0, "watch printed %r" % lines)
            r, _, _ = select.select([proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            self.assertTrue(chunk, "watch ended: %r" % lines)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.append(line.decode())
        return lines

    def stop_watch(self, proc):
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=5 * ft.SCALE)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for f in (proc.stdout, proc.stderr):
                if f is not None:
                    f.close()
        self.assertEqual(rc, 0, "fetchctl watch status after SIGINT")

    def test_watch_plain_lines(self):
        self.submit_job("w", [self.url("w.bin", size=100)])
        self.wait_done("w")
        proc = subprocess.Popen([FETCHCTL, "-s", self.daemon.socket,
                                 "watch", "200"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            lines = self.watch_lines(proc, 3)
        finally:
            self.stop_watch(proc)
        for line in lines:
            self.assertRegex(line, r"^\d\d:\d\d:\d\d .*URL/s \(100 B in 1 "
                             r"URL\).*transfers 0 active")
            self.assertNotIn("\033", line)

    def test_watch_json(self):
        proc = subprocess.Popen([FETCHCTL, "-s", self.daemon.socket,
                                 "--json", "watch", "100"],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            lines = self.watch_lines(proc, 3)
        finally:
            self.stop_watch(proc)
        ups = [json.loads(x)["uptime_s"] for x in lines]
        self.assertEqual(ups, sorted(ups))
        self.assertGreater(ups[-1], ups[0])

    def test_watch_terminal(self):
        master, slave = pty.openpty()
        proc = subprocess.Popen([FETCHCTL, "-s", self.daemon.socket,
                                 "watch", "200"], stdout=slave,
                                stderr=subprocess.PIPE)
        os.close(slave)
        out = b""
        try:
            end = time.monotonic() + 10 * ft.SCALE
            while out.count(b"throughput") < 3:
                self.assertLess(time.monotonic(), end, repr(out))
                r, _, _ = select.select([master], [], [], 0.5)
                if r:
                    try:
                        out += os.read(master, 65536)
                    except OSError:
                        break
        finally:
            self.stop_watch(proc)
            os.close(master)
        # Cleared once, then redrawn from the top.
        self.assertEqual(out.count(b"\033[2J"), 1)
        self.assertGreaterEqual(out.count(b"\033[H"), 3)
        self.assertIn(b"^C to stop", out)
        self.assertIn(b"transfers", out)


class TestSubmit(ControlTestCase):
    """fetchctl submit: validation at the prompt, atomic hand-off."""

    def listing(self, sub):
        return sorted(os.listdir(self.daemon.spool_path(sub)))

    def prepare_spool(self):
        """Without a daemon the spool may not exist yet: make it as
        fetchd would."""
        for sub in ("", "tmp", "new", "active", "done", "failed"):
            os.makedirs(self.daemon.spool_path(sub), exist_ok=True)

    @no_daemon
    def test_bad_job_refused_with_line_numbers(self):
        self.prepare_spool()
        good = os.path.join(self.tmp, "good.txt")
        bad = os.path.join(self.tmp, "bad.txt")
        with open(good, "w") as f:
            f.write(self.url("g.bin") + "\n")
        with open(bad, "w") as f:
            f.write("# a comment\n%s\nftp://example.org/x\n%s out=../x\n"
                    % (self.url("a.bin"), self.url("b.bin")))
        rc, out, err = self.ctl("-c", self.daemon.conf, "submit", good, bad,
                                sock=False)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(out, "")
        self.assertRegex(err, r"(?m)^%s: line 3: " % re.escape(bad))
        self.assertRegex(err, r"(?m)^%s: line 4: " % re.escape(bad))
        self.assertIn("nothing submitted", err)
        # Nothing reached new/, nothing is left in tmp/.
        self.assertEqual(self.listing("new"), [])
        self.assertEqual(self.listing("tmp"), [])
        # An empty job and a missing file are refused too.
        empty = os.path.join(self.tmp, "empty.txt")
        open(empty, "w").close()
        rc, out, err = self.ctl("-c", self.daemon.conf, "submit", empty,
                                sock=False)
        self.assertEqual(rc, 1)
        self.assertIn("no URLs", err)
        rc, out, err = self.ctl("-c", self.daemon.conf, "submit",
                                os.path.join(self.tmp, "nope"), sock=False)
        self.assertEqual(rc, 1)
        self.assertEqual(self.listing("new") + self.listing("tmp"), [])

    @no_daemon
    def test_large_job_handed_off_whole(self):
        self.prepare_spool()
        n = 2000
        path = os.path.join(self.tmp, "many urls.txt")
        with open(path, "w") as f:
            for i in range(n):
                f.write("%s out=d/m%04d.bin\n" % (
                    self.url("m%04d.bin" % i, size=10, seed=i), i))
        size = os.path.getsize(path)
        self.assertGreater(size, 2 * 65536)     # several writes
        # Watch new/ while fetchctl writes: only the whole file may ever
        # be seen there.
        seen, stop = [], threading.Event()

        def watcher():
            d = self.daemon.spool_path("new")
            while not stop.is_set():
                for e in os.listdir(d):
                    try:
                        seen.append(os.stat(os.path.join(d, e)).st_size)
                    except FileNotFoundError:
                        pass
        th = threading.Thread(target=watcher)
        th.start()
        try:
            rc, out, err = self.ctl("-c", self.daemon.conf, "submit", path,
                                    sock=False)
        finally:
            stop.set()
            th.join()
        self.assertEqual(rc, 0, err)
        name = out.strip()
        self.assertRegex(name, r"^many_urls\.txt\.\d+\.%s\.0$" % r"\d+")
        self.assertEqual(self.listing("new"), [name])
        self.assertEqual(self.listing("tmp"), [])
        self.assertEqual(set(seen) - {size}, set(),
                         "partial job seen in new/")
        with open(self.daemon.spool_path("new", name), "rb") as f,\
                open(path, "rb") as g:
            self.assertEqual(f.read(), g.read())
        self.jobs.add(name)
        # The daemon takes it whole: a row per URL.
        self.daemon.start()
        state, rows = self.wait_done(name, timeout=120)
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), n)
        st = self.stats()
        self.assertEqual(st["urls_total"], n)
        self.assertEqual(st["bytes_total"], 10 * n)
        # And again with the daemon running.
        rc, out, err = self.ctl("-c", self.daemon.conf, "submit", path,
                                sock=False)
        self.assertEqual(rc, 0, err)
        name2 = out.strip()
        self.jobs.add(name2)
        self.assertNotEqual(name2, name)
        state, rows = self.wait_done(name2, timeout=120)
        self.assertEqual((state, len(rows)), ("done", n))

    def test_stdin_and_name(self):
        text = "%s\n" % self.url("s.bin", size=42)
        rc, out, err = self.ctl("-c", self.daemon.conf, "submit", "-",
                                stdin=text.encode(), sock=False)
        self.assertEqual(rc, 0, err)
        name = out.strip()
        self.assertRegex(name, r"^stdin\.\d+\.\d+\.0$")
        self.jobs.add(name)
        self.assertEqual(self.wait_done(name)[0], "done")
        self.assert_file(os.path.join(self.job_dir(name), "s.bin"),
                         body(42))
        rc, out, err = self.ctl("-c", self.daemon.conf, "submit", "--name",
                                "mine", "-", stdin=text.encode(), sock=False)
        self.assertEqual((rc, out), (0, "mine\n"), err)
        self.jobs.add("mine")
        self.assertEqual(self.wait_done("mine")[0], "done")
        for bad in (".hidden", "a/b", "x.result"):
            rc, out, err = self.ctl("-c", self.daemon.conf, "submit",
                                    "--name", bad, "-", stdin=b"",
                                    sock=False)
            self.assertEqual(rc, USAGE, bad)
        # Several files: one name each, all submitted.
        files = []
        for i in range(3):
            p = os.path.join(self.tmp, ".odd name %d" % i)
            with open(p, "w") as f:
                f.write("%s\n" % self.url("f%d.bin" % i))
            files.append(p)
        rc, out, err = self.ctl("-c", self.daemon.conf, "submit", *files,
                                sock=False)
        self.assertEqual(rc, 0, err)
        names = out.split()
        self.assertEqual(len(names), 3)
        for i, nm in enumerate(names):
            self.assertRegex(nm, r"^odd_name_%d\.\d+\.\d+\.%d$" % (i, i))
            self.jobs.add(nm)
            self.assertEqual(self.wait_done(nm)[0], "done")


class TestAccess(ControlTestCase):
    """Who may use the socket; daemons that must not start; not running."""

    def nobody_setup(self):
        if os.geteuid() != 0 or shutil.which("runuser") is None:
            self.skipTest("needs root and runuser")
        os.chmod(self.tmp, 0o755)
        # A copy nobody can surely execute, wherever the build is.
        binary = os.path.join(self.tmp, "fetchctl")
        shutil.copy(FETCHCTL, binary)
        os.chmod(binary, 0o755)
        return binary

    def test_non_member_refused(self):
        binary = self.nobody_setup()
        st = os.stat(self.daemon.socket)
        self.assertEqual(st.st_mode & 0o777, 0o660)
        rc, out, err = self.ctl("ping", user="nobody", binary=binary)
        self.assertEqual(rc, DENIED, out + err)
        self.assertIn("permission denied", err)
        self.assertIn(self.daemon.socket, err)
        # The socket's group may: as primary or as a supplementary group.
        import grp
        gname = grp.getgrgid(st.st_gid).gr_name
        rc, out, err = self.ctl("ping", user="nobody", group=gname,
                                binary=binary)
        self.assertEqual(rc, 0, err)
        rc, out, err = self.ctl("ping", user="nobody", groups=gname,
                                binary=binary)
        self.assertEqual(rc, 0, err)

    @config(daemon={"socket_mode": "0666"})
    def test_non_member_refused_by_credentials(self):
        """With a world-writable socket the kernel lets anyone connect;
        the daemon's own check on the peer's credentials refuses."""
        binary = self.nobody_setup()
        self.assertEqual(os.stat(self.daemon.socket).st_mode & 0o777, 0o666)
        rc, out, err = self.ctl("stats", user="nobody", binary=binary)
        self.assertEqual(rc, DENIED, out + err)
        self.assertIn("permission denied: uid 65534", err)
        self.assertIn("refused uid 65534", self.daemon.log_text())
        import grp
        gname = grp.getgrgid(os.stat(self.daemon.socket).st_gid).gr_name
        rc, out, err = self.ctl("ping", user="nobody", groups=gname,
                                binary=binary)
        self.assertEqual(rc, 0, err)
        self.ctl_ok("ping")

    def test_second_daemon_on_the_same_spool(self):
        p = subprocess.run([ft.FETCHD, "-c", self.daemon.conf],
                           capture_output=True, timeout=10 * ft.SCALE)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"another fetchd is already using the spool",
                      p.stderr)
        self.ctl_ok("ping")

    def test_second_daemon_on_the_same_socket(self):
        other = os.path.join(self.tmp, "other.conf")
        s = ft.merge_settings(self.daemon.settings, {"daemon": {
            "spool_dir": os.path.join(self.tmp, "spool2"),
            "download_dir": os.path.join(self.tmp, "dl2")}})
        self.daemon.write_config(other, s)
        os.mkdir(os.path.join(self.tmp, "dl2"))
        p = subprocess.run([ft.FETCHD, "-c", other], capture_output=True,
                           timeout=10 * ft.SCALE)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(("another fetchd is already listening on %s"
                       % self.daemon.socket).encode(), p.stderr)
        # The running daemon's socket is untouched.
        out = self.ctl_ok("ping")
        self.assertIn("(pid %d)" % self.daemon.pid, out)

    def test_stale_socket_replaced(self):
        self.daemon.kill9()
        self.assertTrue(os.path.exists(self.daemon.socket))
        rc, out, err = self.ctl("ping")
        self.assertEqual(rc, NOT_RUNNING)
        self.assertEqual(err, "fetchd is not running: no one listens on %s\n"
                         % self.daemon.socket)
        self.daemon.start()
        self.assertIn("removing the stale control socket",
                      self.daemon.log_text())
        self.ctl_ok("ping")

    @no_daemon
    def test_socket_path_taken_by_a_file(self):
        with open(self.daemon.socket, "w") as f:
            f.write("not a socket\n")
        p = subprocess.run([ft.FETCHD, "-c", self.daemon.conf],
                           capture_output=True, timeout=10 * ft.SCALE)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"exists and is not a socket", p.stderr)
        with open(self.daemon.socket) as f:
            self.assertEqual(f.read(), "not a socket\n")

    @no_daemon
    def test_not_running(self):
        want = "fetchd is not running: no socket at %s\n" % self.daemon.socket
        for cmd in (["ping"], ["stats"], ["watch"], ["cancel", "x"]):
            rc, out, err = self.ctl(*cmd)
            self.assertEqual((rc, out, err), (NOT_RUNNING, "", want), cmd)
        # The socket found through the config, and through FETCHD_SOCKET.
        rc, out, err = self.ctl("-c", self.daemon.conf, "ping", sock=False)
        self.assertEqual((rc, err), (NOT_RUNNING, want))
        rc, out, err = self.ctl("-c", "/nonexistent.conf", "ping",
                                sock=False,
                                env={"FETCHD_SOCKET": self.daemon.socket})
        self.assertEqual((rc, err), (NOT_RUNNING, want))
        # A clean stop removes the socket.
        self.daemon.start()
        self.ctl_ok("ping")
        self.assertEqual(self.daemon.stop(), 0)
        self.assertFalse(os.path.exists(self.daemon.socket))
        rc, out, err = self.ctl("ping")
        self.assertEqual((rc, err), (NOT_RUNNING, want))


class TestHardening(ControlTestCase):
    """Clients that misbehave cost the daemon nothing."""

    def expect_error(self, payload, pattern, then_closed=True):
        s = self.connect()
        try:
            s.sendall(payload)
            line = read_line(s)
            obj = json.loads(line)
            self.assertEqual(obj["proto"], 1)
            self.assertRegex(obj.get("error", ""), pattern)
            if then_closed:
                rest, how = read_to_end(s)
                self.assertEqual(rest, b"")
                self.assertEqual(how, "eof")
        finally:
            s.close()
        return obj

    def test_bad_requests(self):
        # Unknown words get an error and the connection stays usable.
        s = self.connect()
        s.sendall(b"frobnicate\n")
        self.assertEqual(json.loads(read_line(s))["error"],
                         "unknown command: frobnicate")
        s.sendall(b"\xff\xfe\x01\n")
        self.assertEqual(json.loads(read_line(s))["error"],
                         "unknown command: ???")
        s.sendall(b"a b c d e f\n")
        self.assertEqual(json.loads(read_line(s))["error"],
                         "too many arguments")
        s.sendall(b"\n  \r\n")         # blank lines ask nothing
        s.sendall(b"ping\r\n")
        self.assertIs(json.loads(read_line(s))["pong"], True)
        s.close()
        # A NUL byte, and a line over the limit, end the connection.
        self.expect_error(b"pi\x00ng\n", "NUL")
        self.expect_error(b"x" * (LINE_MAX + 1) + b"\n",
                          "longer than %d" % LINE_MAX)
        self.expect_error(b"y" * 100000, "longer than %d" % LINE_MAX)
        self.expect_error(b"z" * (1 << 20) + b"\n",
                          "longer than %d" % LINE_MAX)
        # Exactly the limit is still a request.
        self.expect_error(b"w" * LINE_MAX + b"\n", "^unknown command",
                          then_closed=False)
        # A last request without a newline, then the client's EOF: still
        # answered.
        s = self.connect()
        s.sendall(b"ping")
        s.shutdown(socket.SHUT_WR)
        rest, how = read_to_end(s)
        s.close()
        self.assertIs(json.loads(rest)["pong"], True)
        self.assertEqual(how, "eof")
        self.ctl_ok("ping")

    def test_watcher_half_close_keeps_its_replies(self):
        """Requests, then `watch`, then the client shuts its side: the
        stream ends, but every reply already queued (more than a socket
        buffer holds) still comes out whole before the close."""
        n = 10000
        s = self.connect()
        s.sendall(b"ping\n" * n + b"watch 100\n")
        s.shutdown(socket.SHUT_WR)
        rest, how = read_to_end(s, timeout=30)
        s.close()
        self.assertEqual(how, "eof")
        self.assertTrue(rest.endswith(b"\n"), "a torn last reply")
        replies = [json.loads(line) for line in rest.splitlines()]
        self.assertEqual(len([r for r in replies[:n] if r.get("pong")]), n)
        self.assertGreaterEqual(len(replies), n + 1)
        for r in replies[n:]:
            self.assertIn("transfers", r)
        self.ctl_ok("ping")

    def test_refused_request_then_eof_keeps_the_replies(self):
        """Requests, one the daemon refuses and closes on (a NUL), then the
        client's EOF: the replies queued before the close (more than a
        socket buffer holds) and the error still come out whole."""
        n = 10000
        s = self.connect()
        s.sendall(b"ping\n" * n + b"pi\x00ng\n" + b"ping\n" * 10)
        s.shutdown(socket.SHUT_WR)
        rest, how = read_to_end(s, timeout=30)
        s.close()
        self.assertEqual(how, "eof")
        self.assertTrue(rest.endswith(b"\n"), "a torn last reply")
        replies = [json.loads(line) for line in rest.splitlines()]
        self.assertEqual(len(replies), n + 1)
        self.assertEqual(len([r for r in replies if r.get("pong")]), n)
        self.assertRegex(replies[-1]["error"], "NUL")
        self.ctl_ok("ping")

    def test_half_sent_request_times_out(self):
        s = self.connect()
        s.sendall(b"sta")
        t0 = time.monotonic()
        # Others are served meanwhile.
        for _ in range(3):
            self.ctl_ok("ping")
        line = read_line(s, timeout=IDLE_TIMEOUT + 10)
        took = time.monotonic() - t0
        self.assertRegex(json.loads(line)["error"], "^idle")
        self.assertGreaterEqual(took, IDLE_TIMEOUT - 1)
        rest, how = read_to_end(s)
        self.assertEqual((rest, how), (b"", "eof"))
        s.close()

    def test_connection_cap(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < CLIENTS_MAX + 64:
            self.skipTest("open file limit %d is below %d clients"
                          % (hard, CLIENTS_MAX))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        socks = [self.connect() for _ in range(CLIENTS_MAX)]
        try:
            # Each of those is a client now; one more is turned away.
            wait_for(lambda: self.fds()[0] >= CLIENTS_MAX + 1, 10,
                     "the daemon to accept %d clients" % CLIENTS_MAX)
            extra = self.connect()
            line = read_line(extra)
            self.assertRegex(json.loads(line)["error"], "too many clients")
            extra.close()
            rc, out, err = self.ctl("ping")
            self.assertEqual(rc, 1)
            self.assertIn("too many clients", err)
        finally:
            for s in socks:
                s.close()
        wait_for(lambda: self.ctl("ping")[0] == 0, 10,
                 "a slot once the clients left")

    def test_watcher_that_never_reads_is_dropped(self):
        """Its output is bounded (CONTROL_OUTPUT_MAX, and the write
        timeout): the daemon drops it instead of growing."""
        s = self.connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"watch 100\n")
        try:
            wait_for(lambda: self.fds()[0] >= 2, 5, "the watcher accepted")
            self.ctl_ok("ping")
            wait_for(lambda: self.fds()[0] == 1, 60,
                     "the daemon to drop a watcher that never reads",
                     lambda: "now %r" % (self.fds(),))
        finally:
            s.close()
        self.ctl_ok("ping")

    def test_abuse_leaves_no_trace(self):
        """Garbage, oversized and half-sent requests, 1,000 connect/close
        cycles (half of them hanging up before their reply), watchers
        vanishing mid-stream: afterwards the daemon still serves and
        downloads, and its descriptors are back where they were."""
        # Warm up (the first download opens what downloads keep open).
        self.submit_job("warm", [self.url("warm.bin", size=10)])
        self.wait_done("warm")
        wait_for(lambda: self.stats()["transfers"]["active"] == 0, 5,
                 "idle")
        # Our own queries gone too: only the listener on the socket.
        base = wait_for(lambda: (lambda f: f if f[0] == 1 else None)(
            self.fds()), 5, "no client on the control socket")
        # A download in flight all along.
        size = 600000
        self.submit_job("during", [self.url("during.bin", size=size,
                                            drip=150000)])
        wait_for(lambda: self.stats()["transfers"]["active"] == 1, 10,
                 "the download to start")

        half = []
        for i in range(20):
            s = self.connect()
            s.sendall(b"stat")           # never finished
            half.append(s)
        for payload in (b"\x00" * 10 + b"\n", b"q" * 9000, b"\xff" * 50
                        + b"\n", b"watch 100 200 300 400 500\n"):
            s = self.connect()
            s.sendall(payload)
            s.close()
        watchers = []
        for i in range(10):
            s = self.connect()
            s.sendall(b"watch 100\n")
            watchers.append(s)
        for s in watchers[:5]:
            read_line(s)
            read_line(s)
        for i in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.daemon.socket)
                if i % 3 == 1:
                    s.sendall(b"stats\n")   # and leave before the reply
                elif i % 3 == 2:
                    s.sendall(b"jobs\n")
                    s.shutdown(socket.SHUT_RDWR)
            except (ConnectionRefusedError, BlockingIOError, OSError):
                pass
            finally:
                s.close()
        for s in watchers + half:
            s.close()

        # Still serving (once the connections still queued are through)
        # and downloading.
        wait_for(lambda: self.ctl("ping")[0] == 0, 10, "a reply to ping")
        state, rows = self.wait_done("during", timeout=30)
        self.assertEqual(state, "done")
        self.assert_file(os.path.join(self.job_dir("during"), "during.bin"),
                         body(size))
        self.submit_job("after", [self.url("after.bin", size=4321)])
        self.assertEqual(self.wait_done("after")[0], "done")
        self.assertEqual(self.stats()["bytes_total"], 10 + size + 4321)

        # Nothing left on the control socket but the listener, and no
        # more files than before (the sockets libcurl keeps for reuse and
        # its own wakeup pairs are not the control socket's).
        wait_for(lambda: (lambda f: f[0] == 1 and f[2] <= base[2])(
            self.fds()), 10, "descriptors back to %r" % (base,),
            lambda: "now %r" % (self.fds(),))
        self.assertEqual(self.daemon.proc.poll(), None)
        # The stats' own count agrees with /proc (the request's own
        # connection is one more).
        st = self.stats()
        total = sum(self.fds())
        self.assertLessEqual(abs(st["process"]["open_fds"] - 1 - total), 2)


class TestServiceStatus(ControlTestCase):
    """The status line systemd shows comes from the same stats."""

    @no_daemon
    def test_status_lines(self):
        path = os.path.join(self.tmp, "notify.sock")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(path)
        self.addCleanup(ns.close)
        old = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = path
        try:
            self.daemon.start()
        finally:
            if old is None:
                del os.environ["NOTIFY_SOCKET"]
            else:
                os.environ["NOTIFY_SOCKET"] = old
        msgs = []

        def got(pred):
            ns.settimeout(0.2)
            try:
                msgs.append(ns.recv(4096).decode())
            except socket.timeout:
                pass
            return any(pred(m) for m in msgs)
        if not built_with_systemd():
            self.skipTest("fetchd was built without libsystemd")
        wait_for(lambda: got(lambda m: "READY=1" in m), 5, "READY=1")
        self.submit_job("n", [self.url("n.bin", size=2048)])
        self.wait_done("n")
        wait_for(lambda: got(lambda m: m.startswith("STATUS=") and
                             "(2.0 KiB in 1 URL)" in m), 5,
                 "a STATUS= line counting the job", lambda: repr(msgs[-3:]))
        line = [m for m in msgs if "(2.0 KiB in 1 URL)" in m][-1]
        self.assertRegex(line, r"^STATUS=\S+ \S+/s [\d.]+ URL/s .*"
                         r"transfers 0 active .*jobs 0 active .*ttfb p50 ")


if __name__ == "__main__":
    ft.main()
