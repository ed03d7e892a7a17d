#!/usr/bin/env python3
"""
e2e_refresh.py: end-to-end tests of refreshing a tree (a job with
"@refresh DIR"): the real fetchd (FETCHD, the engine FETCHD_MODEL names)
fetches from tests/httpd.py on 127.0.0.1, whose etag=, lastmod= and seed=
lists make a resource change between two runs of the same job.

    FETCHD=src/fetchd FETCHD_MODEL=event python3 tests/e2e_refresh.py -v

Covered: the first run writes download_dir/DIR (no directory of the job's
own) with each file's validators beside it and Last-Modified as its
mtime; the next run sends If-None-Match and If-Modified-Since, a 304
leaves the file untouched (same inode) with outcome "unchanged", and a
changed file replaces the old one (its validators too); a file whose new
copy fails verification (sha256) keeps the old one, as does a kill -9
in the middle of the new copy (the restart then replaces it whole); a
segmented URL asks
with its HEAD probe and is done by the 304; two jobs refreshing one tree
never run at once; malformed directives fail the job with their line
numbers.
"""

import hashlib
import os
import sys

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

from fetchdtest import FetchdTestCase, body, config, wait_for  # noqa: E402

SIDECAR = ".validators"
T1 = 1700000000     # a Last-Modified date (epoch seconds)


class RefreshTests(FetchdTestCase):

    settings = {"http": {"retries": 0}}

    def setUp(self):
        super().setUp()
        self.jobs.add("tree")       # download_dir/tree is the refreshed one

    def tree(self, *names):
        return os.path.join(self.daemon.dl, "tree", *names)

    def key(self, url):
        return "/" + url.split("/", 3)[3]

    def run_job(self, name, lines, directive="@refresh tree"):
        """Drop a job refreshing tree, wait for it; (state, rows)."""
        self.drop_job(name, [directive] + lines)
        return self.wait_done(name)

    def sidecar(self, name):
        with open(self.tree(name + SIDECAR)) as f:
            return dict(line.split(" ", 1) for line in f.read().splitlines())

    def header(self, req, name):
        for k, v in req["headers"]:
            if k.lower() == name.lower():
                return v
        return None

    def test_unchanged_files_get_304_and_a_changed_one_is_replaced(self):
        a = self.url("a.bin", size=3000, seed=1, etag="A")
        b = self.url("b.bin", size=2000, seed=2, lastmod=T1)
        c = self.url("c.bin", size=4000, seed=[3, 4], etag=["C1", "C2"])
        d = self.url("d.bin", size=500, seed=5)     # no validators at all
        lines = [a, b, c, d]

        state, rows = self.run_job("r1", lines)
        self.assertEqual(state, "done")
        for row in rows:
            self.assert_row(row, "ok", status=200)
        self.assertFalse(os.path.exists(self.job_dir("r1")),
                         "a refresh job has no directory of its own")
        self.assert_file(self.tree("c.bin"), body(4000, 3))
        self.assertEqual(self.sidecar("a.bin"), {"etag": '"A"'})
        self.assertEqual(list(self.sidecar("b.bin")), ["last-modified"])
        self.assertEqual(os.stat(self.tree("b.bin")).st_mtime, T1)
        self.assertFalse(os.path.exists(self.tree("d.bin" + SIDECAR)))
        before = {n: os.stat(self.tree(n)).st_ino
                  for n in ("a.bin", "b.bin", "c.bin")}

        state, rows = self.run_job("r2", lines)
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "unchanged", status=304, nbytes=3000,
                        path="a.bin")
        self.assert_row(rows[1], "unchanged", status=304, nbytes=2000)
        self.assert_row(rows[2], "ok", status=200, nbytes=4000)
        self.assert_row(rows[3], "ok", status=200, nbytes=500)

        ra = self.server.requests_for(self.key(a))
        self.assertEqual([r["status"] for r in ra], [200, 304])
        self.assertIsNone(self.header(ra[0], "If-None-Match"))
        self.assertEqual(self.header(ra[1], "If-None-Match"), '"A"')
        rb = self.server.requests_for(self.key(b))
        self.assertEqual(self.header(rb[1], "If-Modified-Since"),
                         "Tue, 14 Nov 2023 22:13:20 GMT")
        rc = self.server.requests_for(self.key(c))
        self.assertEqual(self.header(rc[1], "If-None-Match"), '"C1"')
        self.assertEqual(rc[1]["status"], 200)

        # Untouched: the very same files; replaced: the new body, and the
        # new validators beside it.
        self.assertEqual(os.stat(self.tree("a.bin")).st_ino, before["a.bin"])
        self.assertEqual(os.stat(self.tree("b.bin")).st_ino, before["b.bin"])
        self.assertNotEqual(os.stat(self.tree("c.bin")).st_ino,
                            before["c.bin"])
        self.assert_file(self.tree("a.bin"), body(3000, 1))
        self.assert_file(self.tree("c.bin"), body(4000, 4))
        self.assertEqual(self.sidecar("c.bin"), {"etag": '"C2"'})
        self.assertEqual(sorted(os.listdir(self.tree())), sorted(
            ["a.bin", "b.bin", "c.bin", "d.bin", "a.bin" + SIDECAR,
             "b.bin" + SIDECAR, "c.bin" + SIDECAR]))

    def test_a_new_copy_that_fails_verification_keeps_the_old_file(self):
        c = self.url("c.bin", size=4000, seed=[3, 4], etag=["C1", "C2"])
        line = "%s sha256=%s" % (c, hashlib.sha256(body(4000, 3)).hexdigest())
        state, rows = self.run_job("r1", [line])
        self.assertEqual(state, "done")
        state, rows = self.run_job("r2", [line])
        self.assertEqual(state, "failed")
        self.assertIn("sha256 mismatch", rows[0].error_text)
        self.assert_file(self.tree("c.bin"), body(4000, 3))
        self.assertEqual(self.sidecar("c.bin"), {"etag": '"C1"'})
        self.assertFalse(os.path.exists(self.tree("c.bin.part")))

    def test_kill9_mid_replacement_keeps_the_old_file(self):
        """Until the new copy is complete the old file is the one there;
        after a kill -9 and a restart the new one replaces it whole."""
        c = self.url("c.bin", size=100000, seed=[3, 4], etag=["C1", "C2"],
                     drip=50000)
        state, _ = self.run_job("r1", [c])
        self.assertEqual(state, "done")
        self.drop_job("r2", ["@refresh tree", c])
        self.wait_file_size(self.tree("c.bin.part"), 10000)
        self.assert_file(self.tree("c.bin"), body(100000, 3))
        self.daemon.kill9()
        self.assert_file(self.tree("c.bin"), body(100000, 3))
        self.daemon.start()
        state, rows = self.wait_done("r2")
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "ok", nbytes=100000)
        self.assert_file(self.tree("c.bin"), body(100000, 4))
        self.assertEqual(self.sidecar("c.bin"), {"etag": '"C2"'})
        self.assertFalse(os.path.exists(self.tree("c.bin.part")))

    @config(http={"segments": 2, "segment_min_size": "4K"})
    def test_a_segmented_url_asks_with_its_probe(self):
        u = self.url("s.bin", size=64000, seed=7, etag="S")
        state, rows = self.run_job("r1", [u])
        self.assertEqual(state, "done")
        self.assert_file(self.tree("s.bin"), body(64000, 7))
        n1 = len(self.server.requests_for(self.key(u)))
        self.assertGreaterEqual(n1, 3)      # HEAD and two ranges
        state, rows = self.run_job("r2", [u])
        self.assertEqual(state, "done")
        self.assert_row(rows[0], "unchanged", status=304, nbytes=64000)
        reqs = self.server.requests_for(self.key(u))[n1:]
        self.assertEqual([(r["method"], r["status"]) for r in reqs],
                         [("HEAD", 304)])
        self.assertEqual(self.header(reqs[0], "If-None-Match"), '"S"')

    def test_two_jobs_never_refresh_one_tree_at_once(self):
        slow = self.url("slow.bin", size=1000, etag="X", delay=1500)
        self.drop_job("r1", ["@refresh tree", slow])
        wait_for(lambda: "job r1: 1 URL" in self.daemon.log_text(), 10,
                 "r1 to run", self.daemon.log_tail)
        self.drop_job("r2", ["@refresh tree/sub", self.url("o.bin",
                                                           size=10)])
        wait_for(lambda: "refreshes the tree tree" in self.daemon.log_text(),
                 10, "r2 to wait for r1", self.daemon.log_tail)
        self.assertIsNone(self.daemon.finished("r2"))
        state, _ = self.wait_done("r1")
        self.assertEqual(state, "done")
        state, rows = self.wait_done("r2", timeout=30)
        self.assertEqual(state, "done")
        self.assert_file(self.tree("sub", "o.bin"), body(10))
        first = self.server.requests_for(self.key(slow))[0]
        other = self.server.requests_for("/f/o.bin?size=10")[0]
        self.assertGreater(other["time"], first["time"] + 1.0)

    def test_bad_directives_fail_the_job_with_their_line(self):
        u = self.url("a.bin", size=10)
        cases = [
            (["@refresh ../up", u], "line 1: @refresh's directory has a "
             "'..' component"),
            (["@refresh /abs", u], "line 1: @refresh's directory must be a "
             "relative path"),
            (["@refresh a b", u], "line 1: @refresh takes one directory"),
            (["@refresh", u], "line 1: @refresh names no directory"),
            (["@refresh a", "@refresh b", u], "line 2: @refresh is given "
             "twice"),
            ([u, "@refresh a"], "line 2: @refresh must come before the "
             "first URL line"),
            (["@refresh x.validators", u], "line 1: @refresh's directory "
             "has a component ending in \".validators\""),
        ]
        for i, (lines, msg) in enumerate(cases):
            name = "bad%d" % i
            self.drop_job(name, lines)
            state, rows = self.wait_done(name)
            self.assertEqual(state, "failed", lines)
            self.assertIn(msg, [r.error_text for r in rows], lines)
        self.assertEqual(self.server.requests_for(self.key(u)), [])

    def test_out_names_never_end_like_a_sidecar(self):
        u = self.url("a.bin", size=10)
        self.drop_job("bad", ["%s out=x%s" % (u, SIDECAR)])
        state, rows = self.wait_done("bad")
        self.assertEqual(state, "failed")
        self.assertIn("component ending in", rows[0].error_text)
        state, rows = self.run_job("r1", [self.url("z" + SIDECAR, size=10)])
        self.assertEqual(state, "done")
        self.assertEqual(rows[0].path, "z" + SIDECAR + "_")


if __name__ == "__main__":
    from fetchdtest import main
    main()
