#!/usr/bin/env python3
"""
e2e_browser.py: the status page in a real browser, headless Chromium
(scripts/status-shot drives it), against a running daemon with jobs in
flight:

- the page loads and runs with no console error and no CSP violation;
- its figures are the ones `fetchctl --json stats` gives at the same
  moment: every counter between the values read just before and just
  after the page's snapshot, the rates within that range, the job table's
  counts within /jobs.json's;
- it follows a job as the job progresses;
- it says so when the daemon does not answer;
- a screenshot is saved for people to look at (status-page.png in the
  current directory, the build's tests/ under make check; STATUS_SHOT
  names another file), its path printed.

Skipped when Chromium is not installed: exit status 77 when run by hand,
a TAP plan of 0 with SKIP under make check.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import wait_for  # noqa: E402
from e2e_web import WebTestCase  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or "chromium"
SHOT = os.path.join(ft.TESTS_SRCDIR, os.pardir, "scripts", "status-shot")
SCREENSHOT = (os.environ.get("STATUS_SHOT")
              or os.path.join(os.getcwd(), "status-page.png"))
# Chromium's console lines and refusals, as --enable-logging prints them.
CONSOLE_ERROR = re.compile(r"CONSOLE\(\d+\)|Refused to|Uncaught|"
                           r"Content Security Policy")


def value(dom, ident):
    """The data-v of element ident in dom, as a number."""
    m = re.search(r'id="%s"[^>]*data-v="([^"]*)"' % re.escape(ident), dom)
    if m is None:
        raise AssertionError("no data-v for #%s in the page" % ident)
    return float(m.group(1))


def job_row(dom, table, name):
    """The data-* attributes of the row of job name in tbody table."""
    m = re.search(r'<tbody id="%s">(.*?)</tbody>' % table, dom, re.S)
    rows = re.findall(r"<tr ([^>]*)>", m.group(1)) if m else []
    for attrs in rows:
        a = dict(re.findall(r'([\w-]+)="([^"]*)"', attrs))
        if a.get("data-job") == name:
            return a
    return None


class TestBrowser(WebTestCase):
    settings = {"workers": {"count": 2}}

    def chromium(self, *args, console=True):
        """Run status-shot; returns its stdout. Fails on any page error
        Chromium reported on stderr (console: check for them)."""
        p = subprocess.run(["sh", SHOT] + list(args), capture_output=True,
                           timeout=60 * ft.SCALE,
                           env=dict(os.environ, CHROMIUM=CHROMIUM))
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, err)
        bad = [ln for ln in err.splitlines()
               if console and CONSOLE_ERROR.search(ln)]
        self.assertEqual(bad, [], "the browser reported errors")
        return p.stdout.decode("utf-8", "replace")

    def dom(self, url=None):
        dom = self.chromium("--dom", url or self.base + "/")
        self.assertIn('data-errors="0"', dom, "the page counted errors")
        return dom

    def snapshot(self):
        """(stats before, jobs before, the page's DOM, stats after, jobs
        after): the page's figures lie between the two."""
        a, ja = self.ctl_stats(), self.get_json("/jobs.json")
        dom = self.dom()
        b, jb = self.ctl_stats(), self.get_json("/jobs.json")
        self.assertNotIn('data-refreshes="0"', dom, "the page never loaded "
                         "its figures")
        self.assertIn('data-stale="0"', dom)
        return a, ja, dom, b, jb

    def assert_between(self, dom, ident, lo, hi):
        v = value(dom, ident)
        self.assertTrue(lo <= v <= hi, "#%s = %s, not within [%s, %s]"
                        % (ident, v, lo, hi))

    def assert_figures(self, a, dom, b):
        for ident, path in (
                ("v-tr-done", ("transfers", "done")),
                ("v-tr-failed", ("transfers", "failed")),
                ("v-tr-retried", ("transfers", "retried")),
                ("v-jobs-done", ("jobs", "done")),
                ("v-jobs-failed", ("jobs", "failed")),
                ("v-urls-total", ("urls_total",)),
                ("v-bytes-total", ("bytes_total",)),
                ("v-ttfb-count", ("latency_ms", "ttfb", "count")),
                ("v-total-count", ("latency_ms", "total", "count"))):
            lo, hi = a, b
            for k in path:
                lo, hi = lo[k], hi[k]
            self.assert_between(dom, ident, lo, hi)
        self.assertEqual(value(dom, "v-workers"), a["workers"])
        self.assertIn('id="v-model">%s<' % a["model"], dom)
        self.assertIn('id="v-pid">%d<' % a["pid"], dom)
        for w in ("10s", "60s"):
            for k, ident in (("bytes_per_s", "bps"), ("urls_per_s", "ups")):
                x, y = a["rate"][w][k], b["rate"][w][k]
                self.assert_between(dom, "v-rate-%s-%s" % (w, ident),
                                    min(x, y) * 0.8, max(x, y) * 1.2 + 1)

    def test_page_follows_jobs(self):
        self.drop_job("early", [self.url("e%d.bin" % i, size=5000 * (i + 1))
                                for i in range(3)] +
                      [self.url("gone.bin", status=404)])
        self.wait_done("early")
        # Two workers, twenty files of about a second each.
        self.drop_job("live", [self.url("l%d.bin" % i, size=24000,
                                        drip=24000) for i in range(20)])

        def live_done():
            for j in self.get_json("/jobs.json")["active"]:
                if j["name"] == "live" and j["done"] >= 1:
                    return j["done"]
            return None
        wait_for(live_done, 20, "the live job to finish a URL")
        a, ja, dom, b, jb = self.snapshot()
        self.assert_figures(a, dom, b)
        row = job_row(dom, "t-active", "live")
        self.assertIsNotNone(row, "no row for the live job")
        lo = [j for j in ja["active"] if j["name"] == "live"][0]
        hi = ([j for j in jb["active"] if j["name"] == "live"] or
              [{"done": 20}])[0]
        self.assertTrue(lo["done"] <= int(row["data-done"]) <= hi["done"],
                        (row, lo, hi))
        self.assertEqual(row["data-urls"], "20")
        early = job_row(dom, "t-finished", "early")
        self.assertEqual(early["data-state"], "failed")
        self.assertIn('href="/jobs/early.json"', dom)
        self.assertRegex(dom, r'<tr data-host="127.0.0.1"><td class="name">'
                         r'127.0.0.1</td><td>\d+</td>')
        self.assertRegex(dom, r'<tr data-kind="http_4xx">')
        self.assertIn("<canvas", dom)
        first = int(row["data-done"])

        def moved():
            jobs = self.get_json("/jobs.json")["active"]
            now = [j["done"] for j in jobs if j["name"] == "live"]
            return not now or now[0] >= first + 2
        wait_for(moved, 20, "the live job to make progress")
        a, ja, dom, b, jb = self.snapshot()
        self.assert_figures(a, dom, b)
        row = job_row(dom, "t-active", "live")
        if row is not None:
            self.assertGreater(int(row["data-done"]), first)
        else:
            self.assertEqual(job_row(dom, "t-finished", "live")
                             ["data-state"], "done")
        # The picture, while the job still runs if it does.
        if os.path.exists(SCREENSHOT):
            os.unlink(SCREENSHOT)
        self.chromium(self.base + "/", SCREENSHOT, "1280x1500")
        with open(SCREENSHOT, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(SCREENSHOT), 10000)
        sys.stderr.write("screenshot: %s\n" % SCREENSHOT)
        print("# screenshot: %s" % SCREENSHOT, flush=True)
        self.wait_done("live", timeout=30)

    def test_banner_when_not_answering(self):
        """Where its JSON does not answer, the page says since when in a
        banner and greys what it showed."""
        status, _, page = self.request("GET", "/")
        tmp = tempfile.mkdtemp(dir=self.tmp)
        path = os.path.join(tmp, "page.html")
        with open(path, "wb") as f:
            f.write(page)
        # (Chromium says why the requests failed on its console.)
        dom = self.chromium("--dom", "file://" + path, console=False)
        self.assertRegex(dom, r'<div id="banner" class="banner">fetchd is '
                         r'not answering since \d\d:\d\d:\d\d')
        self.assertIn('<main id="main" class="stale">', dom)
        self.assertIn('data-stale="1"', dom)


def skip_without_chromium():
    if shutil.which(CHROMIUM) is not None:
        return
    reason = "%s is not installed (apt-get install chromium)" % CHROMIUM
    if os.environ.get("FETCHD_TAP"):
        print("1..0 # SKIP %s" % reason)
        sys.exit(0)
    sys.stderr.write("e2e_browser: skipped: %s\n" % reason)
    sys.exit(77)


if __name__ == "__main__":
    skip_without_chromium()
    ft.main()
