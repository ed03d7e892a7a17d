#!/usr/bin/env python3
"""
e2e_web.py: the HTTP listener of metrics_listen, over real HTTP on
loopback against the real daemon: the status page, /metrics, /stats.json,
/jobs.json and /jobs/J.json.

- every route answers GET and HEAD only: other methods get 405 with Allow
  and change nothing; unknown paths 404;
- every response carries the Content-Security-Policy (the page's inline
  blocks allowed by their sha256, nothing else inline), nosniff, no-store
  and no-referrer;
- URLs never show userinfo or query secrets;
- the hosts and finished-jobs tables count what happened;
- a thousand page loads leave the daemon's RSS and descriptors as they
  were;
- the Grafana dashboard in contrib/ parses and queries only metrics that
  /metrics exports.

WebTestCase is also the base of e2e_browser.py.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, body, wait_for  # noqa: E402

FETCHCTL = ft.FETCHCTL
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
ROUTES = ("/", "/metrics", "/stats.json", "/jobs.json", "/history.json")
DASHBOARD = os.path.join(ft.TESTS_SRCDIR, os.pardir, "contrib", "grafana",
                         "fetchd.json")


def inline_hashes(page, tag):
    """The CSP source expressions of page's inline <tag> blocks."""
    return ["'sha256-%s'" % base64.b64encode(
        hashlib.sha256(m.encode()).digest()).decode()
        for m in re.findall(r"<%s>(.*?)</%s>" % (tag, tag), page, re.S)]


def proc_status(pid):
    """(VmRSS in KiB, open descriptors) of process pid."""
    with open("/proc/%d/status" % pid) as f:
        rss = int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))
    return rss, len(os.listdir("/proc/%d/fd" % pid))


class WebTestCase(FetchdTestCase):
    """A daemon with metrics_listen on a free loopback port."""

    def setUp(self):
        if not FETCHCTL:
            raise unittest.SkipTest("FETCHCTL is not set")
        self.port = ft.free_port()
        self.settings = ft.merge_settings(self.settings, {
            "daemon": {"metrics_listen": "127.0.0.1:%d" % self.port}})
        super().setUp()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def request(self, method, path, body=None):
        """(status, headers as a dict, body bytes); a connection each."""
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=10 * ft.SCALE)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            c.close()

    def get_json(self, path):
        status, headers, data = self.request("GET", path)
        self.assertEqual(status, 200, "%s: %r" % (path, data))
        self.assertEqual(headers["Content-Type"], "application/json")
        return json.loads(data)

    def ctl_stats(self):
        """`fetchctl --json stats`, without "proto"."""
        p = subprocess.run([FETCHCTL, "-s", self.daemon.socket, "--json",
                            "stats"], capture_output=True,
                           timeout=10 * ft.SCALE)
        self.assertEqual(p.returncode, 0, p.stderr)
        st = json.loads(p.stdout)
        st.pop("proto", None)
        return st


class TestRoutes(WebTestCase):
    """What each route answers, and the headers every answer carries."""

    def assert_headers(self, headers, page):
        for k, v in SECURITY_HEADERS.items():
            self.assertEqual(headers.get(k), v, "%s: %r" % (k, headers))
        csp = headers["Content-Security-Policy"]
        directives = dict((d.strip().split(" ", 1) + [""])[:2]
                          for d in csp.split(";"))
        self.assertEqual(directives["default-src"], "'none'")
        self.assertEqual(directives["script-src"],
                         " ".join(inline_hashes(page, "script")))
        self.assertEqual(directives["style-src"],
                         " ".join(inline_hashes(page, "style")))
        for d, v in (("connect-src", "'self'"), ("base-uri", "'none'"),
                     ("form-action", "'none'"),
                     ("frame-ancestors", "'none'")):
            self.assertEqual(directives[d], v, csp)
        self.assertNotIn("unsafe", csp)

    def test_routes_headers_and_head(self):
        self.drop_job("j", [self.url("a.bin", size=100)])
        self.wait_done("j")
        status, headers, page = self.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
        page = page.decode("ascii")
        self.assertIn("<title>fetchd status</title>", page)
        # One block of each, and nothing the CSP would refuse.
        self.assertEqual(len(inline_hashes(page, "script")), 1)
        self.assertEqual(len(inline_hashes(page, "style")), 1)
        self.assertNotRegex(page, r"<script[^>]*src=|<link|style=\"| on\w+=")
        self.assertNotRegex(page, r"https?://(?!127)")
        self.assert_headers(headers, page)
        for path in ROUTES + ("/jobs/j.json", "/nope", "/jobs/none.json"):
            status, headers, data = self.request("GET", path)
            self.assertEqual(status, 404 if path in (
                "/nope", "/jobs/none.json") else 200, path)
            self.assert_headers(headers, page)
            hstatus, hheaders, hdata = self.request("HEAD", path)
            self.assertEqual(hstatus, status, path)
            self.assertEqual(hdata, b"", path)
            # The figures of these move (uptime, samples).
            if path not in ("/metrics", "/stats.json", "/history.json"):
                self.assertEqual(hheaders["Content-Length"], str(len(data)),
                                 path)
            self.assertEqual(hheaders["Content-Type"],
                             headers["Content-Type"], path)
        detail = self.get_json("/jobs/j.json")
        self.assertEqual(detail["name"], "j")
        self.assertEqual(detail["state"], "done")
        self.assertEqual(detail["result"],
                         self.daemon.spool_path("done", "j.result"))
        status, headers, data = self.request("GET", "/metrics")
        self.assertTrue(headers["Content-Type"].startswith(
            "text/plain; version=0.0.4"))
        self.assertIn(b"fetchd_transfers_done_total 1\n", data)
        for bad in ("/jobs/..%2Fdone%2Fj.json", "/jobs/.json",
                    "/jobs/%2e%2e.json", "/jobs/j%00.json", "/stats.json/",
                    "/index.html", "/jobs/j.json.bak"):
            self.assertEqual(self.request("GET", bad)[0], 404, bad)

    def test_read_only(self):
        """POST, PUT, DELETE, PATCH, OPTIONS: 405 with Allow, on every
        route, with or without a body; the daemon runs on unchanged."""
        self.drop_job("slow", [self.url("s.bin", size=40000, drip=20000)])
        wait_for(lambda: self.ctl_stats()["jobs"]["active"] == 1, 10,
                 "the job to be active")
        for path in ROUTES + ("/jobs/slow.json", "/pause", "/cancel"):
            for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                status, headers, data = self.request(
                    method, path, body=b"cancel slow" if method in
                    ("POST", "PUT") else None)
                self.assertEqual(status, 405, "%s %s" % (method, path))
                self.assertEqual(headers["Allow"], "GET, HEAD")
                self.assertEqual(headers["X-Content-Type-Options"],
                                 "nosniff")
        st = self.ctl_stats()
        self.assertFalse(st["paused"])
        self.wait_done("slow")
        self.assertTrue(os.path.exists(
            self.daemon.spool_path("done", "slow")))

    def test_secrets_redacted(self):
        """A URL's userinfo and query secrets never reach the page's JSON:
        not in an active job's errors, not among the finished jobs."""
        port = self.server.url("x").split(":")[2].split("/")[0]
        secret = ("http://alice:hunter2@127.0.0.1:%s/f/sec.bin?size=10&"
                  "status=503&token=SEKRET&api_key=KEYVAL" % port)
        self.drop_job("sec", [secret,
                              self.url("slow.bin", size=60000, drip=30000)])

        def errors():
            active = self.get_json("/jobs.json")["active"]
            return active and active[0]["errors"]
        errs = wait_for(errors, 15, "an error listed for the active job")
        self.assertIn("REDACTED", errs[0]["url"])
        self.assertNotIn("alice", errs[0]["url"])
        self.wait_done("sec", timeout=30)
        everything = b"".join(self.request("GET", p)[2] for p in
                              ROUTES + ("/jobs/sec.json",))
        for word in (b"hunter2", b"alice", b"SEKRET", b"KEYVAL"):
            self.assertNotIn(word, everything)
        finished = self.get_json("/jobs.json")["finished"]
        self.assertEqual(finished[0]["name"], "sec")

    def test_hosts_and_finished(self):
        """The busiest hosts count URLs, bytes and failed attempts; the
        finished jobs are listed newest first with their result."""
        sizes = [100, 2000, 30000]
        self.drop_job("ok", [self.url("h%d.bin" % i, size=n)
                             for i, n in enumerate(sizes)])
        self.wait_done("ok")
        self.drop_job("bad", [self.url("missing.bin", status=404)])
        self.wait_done("bad")
        hosts = self.get_json("/stats.json")["hosts"]
        self.assertEqual(hosts, [{"host": "127.0.0.1", "transfers": 4,
                                  "bytes": sum(sizes), "errors": 1}])
        finished = self.get_json("/jobs.json")["finished"]
        self.assertEqual([(j["name"], j["state"], j["urls"], j["done"],
                           j["failed"]) for j in finished],
                         [("bad", "failed", 1, 0, 1), ("ok", "done", 3, 3, 0)])
        self.assertEqual(finished[1]["bytes"], sum(sizes))
        for j in finished:
            self.assertTrue(os.path.exists(j["result"]), j)
            self.assertEqual(self.get_json("/jobs/%s.json" % j["name"])
                             ["result"], j["result"])
        self.assertLess(abs(finished[0]["time"] - time.time()), 60)

    def test_stats_json_is_the_stats(self):
        """/stats.json is what `fetchctl --json stats` says, plus hosts."""
        self.drop_job("j", [self.url("a.bin", size=5000)])
        self.wait_done("j")
        web = self.get_json("/stats.json")
        ctl = self.ctl_stats()
        self.assertEqual(set(web) - set(ctl), {"hosts"})
        for k in ("model", "pid", "workers", "jobs", "urls_total",
                  "bytes_total"):
            self.assertEqual(web[k], ctl[k], k)
        self.assertEqual(web["transfers"]["done"], 1)

    def test_history(self):
        """/history.json: a sample a second of what the charts draw, the
        same number of each, oldest first, at most 300."""
        def samples():
            h = self.get_json("/history.json")
            return h if len(h["workers"]) >= 2 else None
        h = wait_for(samples, 10, "two samples in /history.json")
        st = self.ctl_stats()
        keys = ("bytes_per_s", "urls_per_s", "transfers_active",
                "workers_busy", "workers")
        self.assertEqual(set(h), set(keys))
        self.assertEqual(len({len(h[k]) for k in keys}), 1, h)
        self.assertLessEqual(len(h["workers"]), 300)
        self.assertLessEqual(len(h["workers"]), st["uptime_s"] + 1)
        self.assertEqual(h["workers"][-1], st["workers"])
        self.assertEqual(h["workers_busy"][-1], 0)
        self.assertEqual(h["bytes_per_s"][0], 0)

    def test_thousand_loads_bounded(self):
        """A thousand loads (page and JSON, a connection each) leave the
        daemon's RSS within 1 MiB and its descriptors as they were. Under
        ASan the RSS is not the daemon's to bound (freed memory waits in
        ASan's quarantine, up to 256 MiB): there LeakSanitizer, at the
        daemon's exit, stands for the memory half."""
        self.drop_job("j", [self.url("a.bin", size=100)])
        self.wait_done("j")
        pid = self.daemon.pid
        for i in range(100):        # warm up the allocator and caches
            self.request("GET", ROUTES[i % len(ROUTES)])
        rss0, fds0 = proc_status(pid)
        for i in range(1000):
            status, _, data = self.request("GET", ROUTES[i % len(ROUTES)])
            self.assertEqual(status, 200)
        wait_for(lambda: proc_status(pid)[1] <= fds0, 10,
                 "the daemon's descriptors back to %d" % fds0,
                 lambda: "now %d" % proc_status(pid)[1])
        rss1, fds1 = proc_status(pid)
        if os.environ.get("FETCHD_SANITIZER") != "asan":
            self.assertLessEqual(rss1 - rss0, 1024,
                                 "RSS %d KiB -> %d KiB" % (rss0, rss1))
        self.assertEqual(self.ctl_stats()["transfers"]["done"], 1)


class TestDashboard(WebTestCase):
    """contrib/grafana/fetchd.json against the daemon's /metrics."""

    def test_every_metric_queried_is_exported(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"]
                 for t in p.get("targets", [])]
        self.assertGreater(len(exprs), 10)
        self.drop_job("j", [self.url("a.bin", size=100)])
        self.wait_done("j")
        status, _, text = self.request("GET", "/metrics")
        exported = set(re.findall(r"^(fetchd_\w+)[{ ]", text.decode(), re.M))
        queried = set()
        for e in exprs:
            queried.update(re.findall(r"\b(fetchd_\w+)", e))
            self.assertEqual(e.count("("), e.count(")"), e)
        missing = queried - exported
        self.assertEqual(missing, set(), "queried but not exported")
        # Percentiles come from the histograms, so they aggregate.
        quantiles = [e for e in exprs if "histogram_quantile" in e]
        self.assertGreaterEqual(len(quantiles), 6)
        for e in quantiles:
            self.assertRegex(e, r"sum by \(le\) \(rate\(fetchd_latency_"
                             r"(ttfb|total)_histogram_seconds_bucket")
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))


if __name__ == "__main__":
    ft.main()
