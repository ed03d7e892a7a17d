#!/usr/bin/env python3
"""
e2e_net.py: end-to-end tests of where transfers go and what they say:
header= fields and @default, credentials from [http] netrc_file, the
destination policy [http] deny, and proxies (SOCKS5 with names resolved by
the proxy, an HTTPS proxy, no_proxy). The real fetchd (FETCHD, the engine
FETCHD_MODEL names) fetches from tests/httpd.py; a second httpd.py listens
on 127.0.0.2 (another loopback address, so another host), and the proxy is
tests/socks5.py, started by the test, whose log shows each tunnel.

    FETCHD=src/fetchd FETCHD_MODEL=event python3 tests/e2e_net.py -v

Covered: headers arrive as written, quoted, per line and from @default
with the line's own winning by name; refused headers and misplaced
directives fail the job with the line number before any request; after a
redirect to another host Authorization is dropped and other headers are
not; netrc credentials arrive as Basic auth and stay with their host; deny
refuses a direct URL, a name that resolves into a range and a redirect
into one, for good and without a request, while 127.0.0.2 stays allowed;
with a proxy the policy sees the proxy's address; the SOCKS5 proxy carries
the transfers (its log names the host, the server sees the proxy's
connections) and no_proxy bypasses it; an https:// proxy with a
certificate made by the test and proxy_ca_file; a reload that adds a range
stops a kept-alive connection; in cluster mode (with redis-server, through
e2e_cluster.ClusterCase) the headers travel in the stream entry and an
entry with a refused header is refused by the fetching node.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import e2e_cluster  # noqa: E402
import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, body, no_daemon, wait_for  # noqa: E402

DENIED = "destination not allowed"


class OtherServer(ft.Server):
    """httpd.py on another loopback address (127.0.0.2 is a host of its
    own to libcurl, to deny and to redirect to)."""

    def __init__(self, dirpath, addr):
        os.makedirs(dirpath, exist_ok=True)
        super().__init__(dirpath)
        self.addr = addr

    def start(self, timeout=10):
        real = ft.PYTHON3
        # Server.start runs [PYTHON3, httpd.py, ...]: add --bind after it.
        wrapper = os.path.join(self.dir, "bind.sh")
        with open(wrapper, "w") as f:
            f.write('#!/bin/sh\nexec "%s" "$@" --bind %s\n' % (real,
                                                               self.addr))
        os.chmod(wrapper, 0o755)
        ft.PYTHON3 = wrapper
        try:
            super().start(timeout)
        finally:
            ft.PYTHON3 = real
        self.base = "http://%s:%d" % (self.addr, self.port)


class Proxy:
    """tests/socks5.py: SOCKS5, or with tls=(cert, key) an HTTPS proxy."""

    def __init__(self, dirpath, tls=None):
        self.dir = dirpath
        self.port_file = os.path.join(dirpath, "proxy.port")
        self.log_path = os.path.join(dirpath, "proxy.log")
        self.err_path = os.path.join(dirpath, "proxy.err")
        cmd = [ft.PYTHON3, os.path.join(ft.TESTS_SRCDIR, "socks5.py"),
               "--port-file", self.port_file, "--log", self.log_path]
        if tls:
            cmd += ["--tls", tls[0], tls[1]]
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err,
                                         close_fds=True)
        ft._register(self.proc)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("socks5.py exited:\n" +
                                     ft._tail(self.err_path))
            return os.path.exists(self.port_file)
        wait_for(up, 10, "socks5.py to listen")
        with open(self.port_file) as f:
            self.port = int(f.read())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        ft._reaped(self.proc)

    def log(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(x) for x in f if x.strip()]
        except FileNotFoundError:
            return []


def header(rec, name):
    """The values of header name (any case) in a logged request."""
    return [v for k, v in rec.get("headers", []) if k.lower() == name.lower()]


class NetTest(FetchdTestCase):

    def start_with(self, **http):
        """Start fetchd with these [http] settings added."""
        self.daemon.settings.setdefault("http", {}).update(http)
        self.daemon.write_config()
        self.daemon.start()

    def other_server(self):
        srv = OtherServer(os.path.join(self.tmp, "other"), "127.0.0.2")
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def proxy(self, tls=None):
        p = Proxy(self.tmp, tls)
        self.addCleanup(p.stop)
        return p

    def one(self, key):
        rs = self.server.requests_for(key)
        self.assertEqual(len(rs), 1, rs)
        return rs[0]

    # -- header= and @default ------------------------------------------------

    def test_headers_as_written(self):
        self.drop_job("j", [
            "# defaults for every line",
            '@default header="X-Team: blue" header="Authorization: Bearer d"',
            self.url("a.bin", key="a"),
            self.url("b.bin", key="b") + ' header="x-team: red"'
            ' header="X-Quoted: say \\"hi\\" \\\\ there"'
            ' header="User-Agent: own/1" out="b file.bin"',
            self.url("c.bin", key="c") + " header=X-Empty:",
        ])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done", rows)
        a, b, c = self.one("a"), self.one("b"), self.one("c")
        self.assertEqual(header(a, "X-Team"), ["blue"])
        self.assertEqual(header(a, "Authorization"), ["Bearer d"])
        self.assertEqual(header(b, "X-Team"), ["red"])
        self.assertEqual(header(b, "Authorization"), ["Bearer d"])
        self.assertEqual(header(b, "X-Quoted"), ['say "hi" \\ there'])
        self.assertEqual(header(b, "User-Agent"), ["own/1"])
        self.assertEqual(header(c, "X-Empty"), [""])
        self.assertEqual(header(c, "X-Team"), ["blue"])
        self.assertTrue(header(a, "User-Agent")[0].startswith("fetchd/"))
        self.assert_file(os.path.join(self.job_dir("j"), "b file.bin"),
                         body(1024))

    def test_refused_headers_fail_the_job(self):
        good = self.url("fine.bin", key="fine")
        jobs = {
            "jhost": ([good, "", good + ' header="Host: evil"'], 3),
            "jrange": ([good + ' header="Range: bytes=0-"'], 1),
            "jhop": ([good, good + " header=Connection:close"], 2),
            "jtoken": ([good + ' header="Bad Name: x"'], 1),
            "jquote": ([good + ' header="X: open'], 1),
            "jlate": ([good, '@default header="X-A: 1"'], 2),
            "jdefault": (['@default header="Expect: 100-continue"', good],
                         1),
            "jdup": ([good + " header=X-A:1 header=x-a:2"], 1),
        }
        for name, (lines, _) in jobs.items():
            self.drop_job(name, lines)
        for name, (_, bad) in jobs.items():
            state, rows = self.wait_done(name)
            self.assertEqual(state, "failed", name)
            self.assertTrue(any(("line %d:" % bad) in r.error for r in rows),
                            (name, rows))
        self.assertEqual(self.server.requests_for("fine"), [])
        self.assertTrue(self.daemon.running())

    def test_redirect_to_another_host(self):
        other = self.other_server()
        target = other.url("t.bin", key="t")
        self.drop_job("j", [self.url("r.bin", key="r", redirect=target) +
                            ' header="Authorization: Bearer secret"'
                            ' header="X-Custom: 1"'])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done", rows)
        first = self.one("r")
        self.assertEqual(header(first, "Authorization"), ["Bearer secret"])
        moved = other.requests_for("t")
        self.assertEqual(len(moved), 1, moved)
        # libcurl keeps Authorization to the first host; the rest follows.
        self.assertEqual(header(moved[0], "Authorization"), [])
        self.assertEqual(header(moved[0], "X-Custom"), ["1"])

    # -- netrc_file ----------------------------------------------------------

    @no_daemon
    def test_netrc_credentials(self):
        other = self.other_server()
        netrc = os.path.join(self.tmp, "netrc")
        with open(netrc, "w") as f:
            f.write("machine 127.0.0.1 login alice password s3cret\n")
        os.chmod(netrc, 0o600)
        self.start_with(netrc_file=netrc)
        self.drop_job("j", [
            self.url("a.bin", key="a"),
            self.url("r.bin", key="r", redirect=other.url("t.bin", key="t")),
            other.url("o.bin", key="o"),
        ])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done", rows)
        basic = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        self.assertEqual(header(self.one("a"), "Authorization"), [basic])
        self.assertEqual(header(self.one("r"), "Authorization"), [basic])
        # Not to another host, neither after a redirect nor directly.
        for key in ("t", "o"):
            rs = other.requests_for(key)
            self.assertEqual(len(rs), 1, rs)
            self.assertEqual(header(rs[0], "Authorization"), [], key)
        self.assertNotIn("s3cret", self.daemon.log_text())

    # -- deny ----------------------------------------------------------------

    @no_daemon
    def test_deny(self):
        other = self.other_server()
        self.start_with(deny="127.0.0.1/32, ::1/128, 169.254.0.0/16")
        port = self.server.port
        self.drop_job("j", [
            self.url("d.bin", key="d"),
            other.url("ok.bin", key="ok"),
            other.url("r.bin", key="r", redirect=self.url("t.bin", key="t")),
            "http://localhost:%d/f/n.bin?key=n" % port,
        ])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "failed")
        self.assert_row(rows[1], "ok", 200, 1024, 1)
        for i in (0, 2, 3):
            self.assertEqual(rows[i].outcome, "failed", rows[i])
            self.assertIn(DENIED, rows[i].error, rows[i])
            self.assertEqual(rows[i].attempts, 1, rows[i])
        self.assertIn("127.0.0.1 is in http.deny", rows[0].error)
        # Not one request reached 127.0.0.1; the redirect was asked for.
        self.assertEqual(self.server.log(), [])
        self.assertEqual(len(other.requests_for("r")), 1)

    def test_deny_at_reload(self):
        other = self.other_server()
        self.drop_job("j", [other.url("a.bin", key="a")])
        self.assertEqual(self.wait_done("j")[0], "done")
        # The connection to 127.0.0.2 may still be open: a reload that
        # denies it stops it before its next request.
        self.daemon.settings["http"]["deny"] = "127.0.0.2/32"
        self.daemon.write_config()
        mark = len(self.daemon.log_text())
        os.kill(self.daemon.pid, signal.SIGHUP)
        wait_for(lambda: "configuration reloaded"
                 in self.daemon.log_text(mark), 10, "the reload")
        self.drop_job("k", [other.url("b.bin", key="b")])
        state, rows = self.wait_done("k")
        self.assertEqual(state, "failed")
        self.assertIn("127.0.0.2 is in http.deny", rows[0].error)
        self.assertEqual(other.requests_for("b"), [])

    @no_daemon
    def test_deny_sees_the_proxy(self):
        other = self.other_server()
        proxy = self.proxy()
        # The target is denied, the proxy is not: the policy sees only
        # the proxy's address, so the transfer goes through it.
        self.start_with(proxy="socks5h://127.0.0.1:%d" % proxy.port,
                        deny="127.0.0.2")
        self.drop_job("j", [other.url("a.bin", key="a")])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done", rows)
        self.assertEqual(len(proxy.log()), 1)
        # And a denied proxy stops everything.
        self.daemon.stop()
        self.start_with(deny="127.0.0.0/8")
        self.drop_job("k", [other.url("b.bin", key="b")])
        state, rows = self.wait_done("k")
        self.assertEqual(state, "failed")
        self.assertIn("127.0.0.1 is in http.deny", rows[0].error)
        self.assertEqual(len(proxy.log()), 1)

    # -- proxies -------------------------------------------------------------

    @no_daemon
    def test_socks5h_proxy(self):
        proxy = self.proxy()
        self.start_with(proxy="socks5h://127.0.0.1:%d" % proxy.port)
        port = self.server.port
        urls = ["http://localhost:%d/f/%d.bin?key=s%d&size=%d"
                % (port, i, i, 5000 + i) for i in range(3)]
        self.drop_job("j", urls)
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done", rows)
        tunnels = proxy.log()
        self.assertGreaterEqual(len(tunnels), 1, tunnels)
        for t in tunnels:
            self.assertEqual(t["kind"], "socks5")
            # socks5h: the name, not an address, went to the proxy.
            self.assertEqual(t["atyp"], "domain", t)
            self.assertEqual(t["target"], ["localhost", port])
            self.assertIsNone(t["error"])
        # Every request came in on a connection the proxy made.
        ups = {tuple(t["upstream"]) for t in tunnels}
        reqs = [r for r in self.server.log() if r["path"].startswith("/f/")]
        self.assertEqual(len(reqs), 3)
        for r in reqs:
            self.assertIn(tuple(r["peer"]), ups, r)
        for i in range(3):
            self.assert_file(os.path.join(self.job_dir("j"), "%d.bin" % i),
                             body(5000 + i))

    @no_daemon
    def test_no_proxy(self):
        proxy = self.proxy()
        self.start_with(proxy="socks5h://127.0.0.1:%d" % proxy.port,
                        no_proxy="127.0.0.1")
        self.drop_job("j", [self.url("a.bin", key="a")])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done", rows)
        self.assertEqual(proxy.log(), [])
        self.assertEqual(len(self.server.requests_for("a")), 1)

    @no_daemon
    def test_https_proxy(self):
        if shutil.which("openssl") is None:
            self.skipTest("no openssl command")
        cert = os.path.join(self.tmp, "proxy.pem")
        key = os.path.join(self.tmp, "proxy.key")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "1", "-subj",
             "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proxy = self.proxy(tls=(cert, key))
        self.start_with(proxy="https://127.0.0.1:%d" % proxy.port,
                        proxy_ca_file=cert)
        self.drop_job("j", [self.url("a.bin", key="a") +
                            ' header="X-Secret: for the server"'])
        state, rows = self.wait_done("j")
        self.assertEqual(state, "done", rows)
        tunnels = proxy.log()
        self.assertEqual(len(tunnels), 1, tunnels)
        self.assertIsNone(tunnels[0]["error"])
        r = self.one("a")
        self.assertEqual(tuple(r["peer"]), tuple(tunnels[0]["upstream"]))
        self.assertEqual(header(r, "X-Secret"), ["for the server"])
        # Without proxy_ca_file the self-made certificate is refused.
        self.daemon.stop()
        self.start_with(proxy_ca_file="")
        self.drop_job("k", [self.url("b.bin", key="b")])
        state, rows = self.wait_done("k", timeout=30)
        self.assertEqual(state, "failed")
        self.assertEqual(self.server.requests_for("b"), [])


class TestClusterHeaders(e2e_cluster.ClusterCase):
    """In cluster mode the headers travel in the stream entry ("h") and the
    fetching node checks them again (skipped without redis-server)."""

    def test_headers_in_stream_entries(self):
        n0 = self.add_node("n0", "coordinate")
        self.add_node("n1", "fetch")
        self.jobs.add("j")
        n0.drop_job("j", [
            '@default header="X-Team: blue"',
            self.server.url("a.bin", key="a"),
            self.server.url("b.bin", key="b") +
            ' header="X-Team: red" header="Authorization: Bearer t"',
        ])
        rows = self.wait_done(n0, "j")
        self.assertEqual([r.node for r in rows], ["n1", "n1"], rows)
        a = self.server.requests_for("a")
        b = self.server.requests_for("b")
        self.assertEqual([header(r, "X-Team") for r in a + b],
                         [["blue"], ["red"]])
        self.assertEqual(header(b[0], "Authorization"), ["Bearer t"])
        # An entry whose headers a job line could not have is refused.
        evil = self.server.url("/f/evil", key="evil")
        self.r("XADD", e2e_cluster.STREAM, "*", "c", "n0", "j", "nojob",
               "i", "0", "u", evil, "n", "evil", "h", "Host: other")
        wait_for(lambda: self.cluster_stats(
            self.nodes["n1"])["bad_entries"] >= 1, 20,
            "the entry to be refused")
        self.assertEqual(self.server.requests_for("evil"), [])


if __name__ == "__main__":
    ft.main()
