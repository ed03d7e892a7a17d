#!/usr/bin/env python3
"""
e2e_soak.py: kill -9 fetchd at random instants, restart it, and check after
every restart that nothing was lost or done twice. Under each engine; under
the process engine workers are killed at random too.

    FETCHD=src/fetchd python3 tests/e2e_soak.py -v

    FETCHD_SOAK_KILLS   kills per engine (default 20; bench/soak runs
                        hundreds)
    FETCHD_SOAK_SEED    the random seed (default: the time; it is printed,
                        so a failing run can be repeated)

The invariants, checked once the jobs are over:
  - every job ends exactly once, in done/ or failed/ (J and J.result, and
    nothing left in new/ or active/);
  - one row per URL, in job order, ok exactly for the URLs that can be
    fetched, and each ok file byte-exact;
  - no URL whose file was complete on disk at a kill is requested again;
  - no .part file left;
  - no process left behind: the workers of a killed daemon exit.
"""

import os
import random
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, body, wait_for  # noqa: E402

KIB = 1024
KILLS = int(os.environ.get("FETCHD_SOAK_KILLS") or "20")
SEED = int(os.environ.get("FETCHD_SOAK_SEED") or str(int(time.time())))
JOBS = 4
URLS = 40


def children(pid):
    """pids of pid's children (its process engine workers)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Soak:
    """One soak run; a mixin for a FetchdTestCase of one engine."""

    def make_jobs(self, rng):
        """{job: [(name, size, seed, key, ok)]} with slow, failing, retried
        and checksummed URLs mixed in."""
        jobs = {}
        for j in range(JOBS):
            specs = []
            for i in range(URLS):
                n = j * URLS + i
                spec = {"name": "s%03d.bin" % n, "size": 2000 + 97 * n,
                        "seed": n % 251, "key": "ks%03d" % n, "ok": True,
                        "params": {}}
                kind = rng.random()
                if kind < 0.25:
                    spec["params"]["drip"] = 64 * KIB
                    spec["size"] += 40 * KIB
                elif kind < 0.30:
                    spec["params"]["status"] = 404
                    spec["ok"] = False
                elif kind < 0.40:
                    spec["params"]["status"] = [503, 200]
                specs.append(spec)
            jobs["soak%d" % j] = specs
        return jobs

    def job_lines(self, specs):
        return [self.url(s["name"], size=s["size"], seed=s["seed"],
                         key=s["key"], **s["params"]) for s in specs]

    def freeze(self, jobs, frozen):
        """Note the request count of every URL whose file is complete."""
        for job, specs in jobs.items():
            d = self.job_dir(job)
            for s in specs:
                if s["key"] in frozen or not s["ok"]:
                    continue
                try:
                    size = os.stat(os.path.join(d, s["name"])).st_size
                except FileNotFoundError:
                    continue
                if size == s["size"]:
                    frozen[s["key"]] = len(self.server.requests_for(s["key"]))

    def kill_daemon(self):
        workers = children(self.daemon.pid)
        self.assertEqual(self.daemon.kill9(), -9)
        for w in workers:
            wait_for(lambda: not alive(w), 10,
                     "worker %d of the killed daemon to exit" % w)

    def kill_a_worker(self, rng):
        workers = children(self.daemon.pid)
        if workers:
            try:
                os.kill(rng.choice(workers), 9)
            except ProcessLookupError:
                pass

    def all_finished(self, jobs):
        return all(self.daemon.finished(j) for j in jobs)

    def soak(self, kill_workers=False):
        rng = random.Random(SEED)
        sys.stderr.write("FETCHD_SOAK_SEED=%d, %d kills ... " % (SEED, KILLS))
        jobs = self.make_jobs(rng)
        for job, specs in jobs.items():
            self.drop_job(job, self.job_lines(specs))
        frozen = {}
        kills = 0
        while kills < KILLS and not self.all_finished(jobs):
            # Let it run for a random moment: a few requests, or none.
            want = len(self.server.log()) + rng.randint(0, 8)
            wait_for(lambda: len(self.server.log()) >= want or
                     self.all_finished(jobs), 30,
                     "progress before kill %d" % kills, self.daemon.log_tail)
            time.sleep(rng.random() * 0.05)
            if kill_workers and rng.random() < 0.3:
                self.kill_a_worker(rng)
            self.kill_daemon()
            kills += 1
            # The server logs a request when its response ends: once none
            # is being served, the log holds every request made so far.
            wait_for(lambda: self.server.concurrency()[0] == 0, 10,
                     "the server to finish the killed daemon's requests")
            self.freeze(jobs, frozen)
            self.daemon.start(timeout=30)
        for job in jobs:
            self.wait_done(job, 120)
        self.check(jobs, frozen)
        sys.stderr.write("%d kills, %d files complete at a kill ... "
                         % (kills, len(frozen)))

    def check(self, jobs, frozen):
        for job, specs in jobs.items():
            state, rows = self.wait_done(job, 5)
            want_ok = all(s["ok"] for s in specs)
            self.assertEqual(state, "done" if want_ok else "failed", job)
            # The journal goes last, just after the two moves.
            want = [(state, job), (state, job + ".result")]
            wait_for(lambda: self.daemon.spool_entries(job) == want, 10,
                     "only %s in the spool" % want,
                     lambda: repr(self.daemon.spool_entries(job)))
            self.assertEqual([r.url for r in rows], self.job_lines(specs))
            d = self.job_dir(job)
            for row, s in zip(rows, specs):
                if s["ok"]:
                    self.assert_row(row, "ok", None, s["size"], None,
                                    s["name"])
                    self.assert_file(os.path.join(d, s["name"]),
                                     body(s["size"], s["seed"]))
                else:
                    self.assert_row(row, "failed", 404)
            self.assert_no_parts(job)
        for key, seen in frozen.items():
            self.assertEqual(len(self.server.requests_for(key)), seen,
                             "%s was requested again after its file was "
                             "complete" % key)


class TestSoakEvent(Soak, FetchdTestCase):
    settings = {"workers": {"model": "event", "count": 8, "per_host": 0},
                "http": {"retries": 3}}

    def test_kill9_soak(self):
        self.soak()


class TestSoakThreads(Soak, FetchdTestCase):
    settings = {"workers": {"model": "threads", "count": 8, "per_host": 0},
                "http": {"retries": 3}}

    def test_kill9_soak(self):
        self.soak()


class TestSoakProcess(Soak, FetchdTestCase):
    settings = {"workers": {"model": "process", "count": 4, "per_host": 0},
                "http": {"retries": 50}}

    def test_kill9_soak(self):
        self.soak(kill_workers=True)


if __name__ == "__main__":
    ft.main()
