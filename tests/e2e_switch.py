#!/usr/bin/env python3
"""
e2e_switch.py: live engine switches. A SIGHUP with a changed workers.model
or workers.count starts the new engine for new work while the old one
finishes what it has; no transfer is lost or repeated.

    FETCHD=src/fetchd python3 tests/e2e_switch.py -v
"""

import os
import signal
import sys
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, body, config  # noqa: E402

KIB = 1024


class TestSwitch(FetchdTestCase):

    settings = {"workers": {"model": "threads", "count": 4, "per_host": 0}}

    def served(self, keys):
        """Keys the server has answered at least once."""
        return sum(1 for k in keys if self.server.requests_for(k))

    def switch(self, **workers):
        self.daemon.settings["workers"].update(workers)
        self.daemon.write_config()
        mark = len(self.daemon.log_text())
        os.kill(self.daemon.pid, signal.SIGHUP)
        ft.wait_for(lambda: "reloaded" in self.daemon.log_text(mark), 10,
                    "the reload to be applied", self.daemon.log_tail)

    def test_threads_event_process_under_load(self):
        """threads -> event -> process -> threads while transfers are in
        flight: each switch lands while the old engine still has slow
        transfers; every URL is requested exactly once and every file is
        byte-exact."""
        specs = [("w%02d.bin" % i, 24 * KIB + i, i, "kw%02d" % i)
                 for i in range(40)]
        urls = [self.url(n, size=s, seed=seed, key=k, drip=64 * KIB)
                for n, s, seed, k in specs]
        self.drop_job("jsw", "\n".join(urls) + "\n")
        keys = [k for _, _, _, k in specs]

        ft.wait_for(lambda: self.served(keys) >= 2, 20, "threads at work")
        self.switch(model="event", count=6)
        ft.wait_for(lambda: self.served(keys) >= 12, 30, "event at work")
        self.switch(model="process", count=3)
        ft.wait_for(lambda: self.served(keys) >= 22, 30, "process at work")
        self.switch(model="threads", count=5)

        state, rows = self.wait_done("jsw", 90)
        self.assertEqual(state, "done")
        self.assertEqual(len(rows), len(specs))
        for row, (name, size, seed, key) in zip(rows, specs):
            self.assert_row(row, "ok", 200, size, 1, name)
            self.assert_file(os.path.join(self.job_dir("jsw"), name),
                             body(size, seed))
            self.assertEqual(len(self.server.requests_for(key)), 1, key)
        log = self.daemon.log_text()
        for old, new in (("threads", "event"), ("event", "process"),
                         ("process", "threads")):
            self.assertIn("switching engine: %s" % old, log)
        self.assertIn("engine drained", log)

    @config(workers={"model": "event", "count": 2})
    def test_bad_model_keeps_running_engine(self):
        """A reload whose file is invalid changes nothing: the running
        engine keeps working and the job completes."""
        urls = [self.url("b%d.bin" % i, size=2000 + i, seed=i)
                for i in range(6)]
        self.daemon.settings["workers"]["model"] = "bogus"
        self.daemon.write_config()
        mark = len(self.daemon.log_text())
        os.kill(self.daemon.pid, signal.SIGHUP)
        ft.wait_for(lambda: "keeping the running configuration"
                    in self.daemon.log_text(mark), 10, "the refused reload")
        self.drop_job("jb", "\n".join(urls) + "\n")
        state, rows = self.wait_done("jb", 30)
        self.assertEqual(state, "done")
        for i, row in enumerate(rows):
            self.assert_row(row, "ok", 200, 2000 + i, 1)


if __name__ == "__main__":
    ft.main()
