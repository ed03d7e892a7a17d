#!/usr/bin/env python3
"""
e2e_cluster.py: cluster mode end to end, three real fetchd nodes (FETCHD)
sharing URLs through a real redis-server, fetching from tests/httpd.py on
127.0.0.1:

    FETCHD=src/fetchd FETCHCTL=src/fetchctl python3 tests/e2e_cluster.py -v

Each test starts its own redis-server (a free port on 127.0.0.1, its own
directory, appendonly yes with appendfsync always, a password through
cluster.password_file, no RDB snapshots), the HTTP server and the nodes it
needs, and checks what the README promises of cluster mode when things go
wrong for real:

 1. 5,000 URLs over three nodes: every URL once in J.result, every file
    byte-exact, no .part left, nothing pending in the group, and every
    node did some of the work;
 2. a worker killed with SIGKILL (not restarted): its entries are taken
    over by the others once idle past claim_idle;
 3. a worker killed and restarted under the same name: its partial files
    are resumed with Range (206);
 4. the coordinator killed and restarted: the job finishes once, each row
    once;
 5. redis-server killed and restarted from its AOF: nothing lost, and the
    nodes said "down" while it was gone;
 6. one node cut off from Redis by a proxy that stops forwarding: its
    entries are taken over, its late results refused and counted once it
    is back;
 7. a worker stopped (SIGSTOP) past claim_idle, then continued: the same,
    and no file in the shared download dir is clobbered;
 8. a poison entry (its node killed each time it holds it): dead-lettered
    after max_deliveries, its row says so;
 9. Redis not there when the nodes start: they run, say "down", and the
    job completes once it appears;
10. one download dir shared by the three nodes;
11. hostile entries written straight into the stream are refused, nothing
    is written outside download_dir, and their results go where
    src/cluster.c sends them;
12. a result deleted while pending for its coordinator is acknowledged,
    not read again in a busy loop;
13. a worker stopped by SIGTERM keeps its leases through the grace period
    and its results reach Redis before it exits: nothing fetched twice;
14. a worker whose grace period ends before its transfers keeps their
    entries and .part files, and resumes them after its restart;
15. Redis restarted without its data: the coordinator adds what was out
    again, and the job completes;
16. a wrong password: the node runs and says why it is down;
17. a job cancelled while its URLs are out: it fails at once with
    "cancelled" rows, and its URLs still in the stream are not fetched;
18. the coordinator cut off from Redis while the others work off its
    URLs: after healing, their results are read, not fetched again.

Skipped (every test, with the reason) when redis-server is not installed
or fetchd was built without hiredis. Run by hand with `--proxy` it is the
TCP proxy of test 6 (see proxy_main).
"""

import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import (Daemon, FetchdTestCase, Server, body,  # noqa: E402
                        merge_settings, wait_for)

REDIS_SERVER = shutil.which("redis-server")
PASSWORD = "fetchd-e2e-secret"
STREAM = "{fetchd}:urls"
GROUP = "fetchd"
DEAD = STREAM + ":dead"
RESULTS = STREAM + ":results:"

# Short leases so that take-overs happen within seconds.
CLAIM_IDLE = 3
LEASE_RENEW = 1


# -- a minimal Redis client (RESP2), enough for the checks ------------------

class RedisError(Exception):
    pass


class Redis:
    """One connection; call(*args) sends a command and returns its
    reply (str, int, None, list; an error reply raises RedisError)."""

    def __init__(self, port, password=PASSWORD, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout * ft.SCALE)
        self.f = self.sock.makefile("rb")
        if password is not None:
            self.call("AUTH", password)

    def close(self):
        self.f.close()
        self.sock.close()

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise RedisError("unexpected reply %r" % line)


def fields(flat):
    """{name: value} of a flat [name, value, ...] list."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


class RedisServer:
    """redis-server on 127.0.0.1:port with its data in dirpath; started
    and restarted (same port, same directory, so the AOF is loaded) and
    stopped by pid."""

    def __init__(self, dirpath, port):
        self.dir = dirpath
        self.port = port
        self.proc = None
        self.log_path = os.path.join(dirpath, "redis.log")
        self.conf = os.path.join(dirpath, "redis.conf")
        os.makedirs(dirpath, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write("bind 127.0.0.1\nport %d\ndir %s\n"
                    "appendonly yes\nappendfsync always\nsave \"\"\n"
                    "requirepass %s\ndaemonize no\nlogfile \"\"\n"
                    "protected-mode yes\n" % (port, dirpath, PASSWORD))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=15):
        assert not self.running()
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, self.conf], stdin=subprocess.DEVNULL,
                stdout=logf, stderr=logf, close_fds=True)
        ft._register(self.proc)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited with %s:\n%s" % (
                    self.proc.returncode, ft._tail(self.log_path)))
            try:
                r = Redis(self.port)
                try:
                    return r.call("PING") == "PONG"
                finally:
                    r.close()
            except (OSError, RedisError):
                # Refused, or still loading its AOF.
                return False
        wait_for(up, timeout, "redis-server to answer on port %d" % self.port,
                 lambda: ft._tail(self.log_path))

    def _reap(self):
        proc, self.proc = self.proc, None
        ft._reaped(proc)
        return proc.returncode

    def kill9(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        return self._reap()

    def stop(self, timeout=10):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * ft.SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self._reap()


# -- the partitioning proxy ------------------------------------------------

def proxy_main(argv):
    """
    A TCP proxy from an ephemeral port on 127.0.0.1 to 127.0.0.1:TARGET:
        e2e_cluster.py --proxy PORT_FILE STATE_FILE TARGET
    SIGUSR1 partitions: connections stay open (new ones are still
    accepted) but no byte is forwarded any more, in either direction;
    whatever arrives is read and dropped, as a network that loses packets
    without telling anyone. SIGUSR2 heals: bytes are forwarded again.
    STATE_FILE says "partitioned" or "open" once the change is in effect.
    SIGTERM ends it.
    """
    port_file, state_file, target = argv[0], argv[1], int(argv[2])
    state = {"partitioned": False}

    def write_atomic(path, text):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.rename(path + ".tmp", path)

    def set_state(partitioned):
        state["partitioned"] = partitioned
        write_atomic(state_file, "partitioned\n" if partitioned else "open\n")

    signal.signal(signal.SIGUSR1, lambda s, f: set_state(True))
    signal.signal(signal.SIGUSR2, lambda s, f: set_state(False))
    signal.signal(signal.SIGTERM, lambda s, f: os._exit(0))

    def pump(src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if state["partitioned"]:
                continue
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    set_state(False)
    write_atomic(port_file, "%d\n" % lsock.getsockname()[1])
    while True:
        conn, _ = lsock.accept()
        try:
            up = socket.create_connection(("127.0.0.1", target), timeout=5)
            up.settimeout(None)
        except OSError:
            conn.close()
            continue
        for a, b in ((conn, up), (up, conn)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


class Proxy:
    """proxy_main in a process of its own, recorded by pid."""

    def __init__(self, dirpath, target):
        self.port_file = os.path.join(dirpath, "proxy.port")
        self.state_file = os.path.join(dirpath, "proxy.state")
        self.err_path = os.path.join(dirpath, "proxy.err")
        self.target = target
        self.proc = None
        self.port = None

    def start(self, timeout=10):
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [ft.PYTHON3, os.path.abspath(__file__), "--proxy",
                 self.port_file, self.state_file, str(self.target)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                close_fds=True)
        ft._register(self.proc)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("the proxy exited with %s:\n%s" % (
                    self.proc.returncode, ft._tail(self.err_path)))
            return os.path.exists(self.port_file)
        wait_for(up, timeout, "the proxy to listen")
        with open(self.port_file) as f:
            self.port = int(f.read())

    def _set(self, sig, want):
        self.proc.send_signal(sig)

        def done():
            try:
                with open(self.state_file) as f:
                    return f.read().strip() == want
            except FileNotFoundError:
                return False
        wait_for(done, 10, "the proxy to be %s" % want)

    def partition(self):
        self._set(signal.SIGUSR1, "partitioned")

    def heal(self):
        self._set(signal.SIGUSR2, "open")

    def stop(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ft._reaped(proc)


# -- can this run at all? ----------------------------------------------------

_skip = []


def skip_reason():
    """Why the suite cannot run here, or None. Computed once."""
    if _skip:
        return _skip[0]
    _skip.append(_skip_reason())
    return _skip[0]


def _skip_reason():
    if not ft.FETCHD:
        return "FETCHD is not set"
    if REDIS_SERVER is None:
        return ("redis-server is not installed (apt-get install "
                "redis-server)")
    if not ft.FETCHCTL:
        return "FETCHCTL is not set"
    # The build's configuration, next to src/fetchd.
    build_h = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(ft.FETCHD))), "build.h")
    if os.path.exists(build_h):
        with open(build_h) as f:
            if not re.search(r"^#define HAVE_HIREDIS 1$", f.read(), re.M):
                return ("fetchd was built without hiredis (no HAVE_HIREDIS "
                        "in %s): install libhiredis-dev and build again"
                        % build_h)
        return None
    return _probe_hiredis()


def _probe_hiredis():
    """No build.h to read: run fetchd on a cluster config and see whether
    it starts or refuses cluster mode for want of hiredis."""
    d = tempfile.mkdtemp(prefix="fetchd-e2e-probe-")
    try:
        daemon = Daemon(d, {"cluster": {"redis": "127.0.0.1:%d"
                                        % ft.free_port()}})
        os.mkdir(daemon.dl)
        offset = daemon.launch()
        try:
            def decided():
                text = daemon.log_text(offset)
                if "built without hiredis" in text:
                    return "without"
                if re.search(r"\bready\b", text):
                    return "with"
                if not daemon.running():
                    return "exit"
                return None
            how = wait_for(decided, 10, "fetchd to start or refuse "
                           "cluster mode", daemon.log_tail)
        finally:
            daemon.kill9()
        if how == "without":
            return ("fetchd was built without hiredis: install "
                    "libhiredis-dev and build again")
        if how == "exit":
            return "fetchd did not start on a cluster config:\n" + \
                daemon.log_tail()
        return None
    finally:
        shutil.rmtree(d, ignore_errors=True)


# -- URLs --------------------------------------------------------------------

class U:
    """One URL of a job: the file /f/NAME with its size and seed, and
    whatever httpd.py knobs; key=NAME so the server log tells it apart."""

    def __init__(self, server, name, size, seed=0, **knobs):
        self.name = name
        self.size = size
        self.seed = seed
        self.url = server.url("/f/" + name, size=size, seed=seed, key=name,
                              **knobs)

    def body(self):
        return body(self.size, self.seed)


# -- the test case -----------------------------------------------------------

class ClusterCase(FetchdTestCase):
    """
    Per test: self.tmp, self.server (running), self.redis (running unless
    the test stops it), self.pw (the password file) and self.nodes
    (name -> Daemon), made by add_node(). Cleanup kills what is left by
    pid: nodes (SIGCONT first for a stopped one), the proxy, redis-server,
    the HTTP server; on failure the logs go to stderr first.
    """

    def setUp(self):
        reason = skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        self.tmp = tempfile.mkdtemp(prefix="fetchd-e2e-cluster-")
        ft._tmpdirs.add(self.tmp)
        self.addCleanup(self._cleanup)
        self.jobs = set()
        self.nodes = collections.OrderedDict()
        self.stopped = set()     # pids sent SIGSTOP and not yet SIGCONT
        self.proxy = None
        self.pw = os.path.join(self.tmp, "redis.pw")
        with open(self.pw, "w") as f:
            f.write(PASSWORD + "\n")
        self.server = Server(self.tmp)
        self.server.start()
        self.redis = RedisServer(os.path.join(self.tmp, "redis"),
                                 ft.free_port())
        self.redis.start()
        # For the FetchdTestCase helpers that want one daemon.
        self.daemon = None

    def tearDown(self):
        if self._failed():
            return
        for name, d in self.nodes.items():
            if d.running():
                rc = d.stop()
                self.assertEqual(rc, 0, "node %s exit status after SIGTERM:"
                                 "\n%s" % (name, d.log_tail()))

    def _cleanup(self):
        failed = self._failed()
        for pid in list(self.stopped):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        self.stopped.clear()
        if failed:
            out = ["\n--- %s ---" % self.id()]
            for name, d in self.nodes.items():
                out.append("--- node %s: fetchd log (tail) ---\n%s\n"
                           "--- node %s spool ---\n%s" % (
                               name, d.log_tail(60), name,
                               d.spool_listing()))
            out.append("--- redis log (tail) ---\n%s" %
                       ft._tail(self.redis.log_path, 20))
            out.append("--- httpd log (tail) ---\n%s" %
                       ft._tail(self.server.log_path, 20))
            sys.stderr.write("\n".join(out) + "\n")
        try:
            for d in self.nodes.values():
                if d.running():
                    try:
                        d.stop(timeout=3 if failed else 10)
                    except AssertionError:
                        pass
                d.kill9()
        finally:
            if self.proxy is not None:
                self.proxy.stop()
            self.redis.kill9()
            self.server.stop()
            if failed and ft.KEEP:
                sys.stderr.write("kept %s\n" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
            ft._tmpdirs.discard(self.tmp)

    # -- nodes ---------------------------------------------------------------

    def add_node(self, name, role="fetch", start=True, redis_port=None,
                 download_dir=None, count=4, cluster=None, **sections):
        """A node named name (its consumer name) in self.tmp/name, talking
        to redis (or redis_port: a proxy), started unless start=False."""
        d = os.path.join(self.tmp, name)
        os.mkdir(d)
        settings = merge_settings({
            "daemon": {"shutdown_grace": 2},
            "workers": {"count": count, "per_host": 0},
            "http": {"retries": 3},
            "cluster": {
                "redis": "127.0.0.1:%d" % (redis_port or self.redis.port),
                "password_file": self.pw,
                "consumer": name,
                "role": role,
                "claim_idle": CLAIM_IDLE,
                "lease_renew": LEASE_RENEW,
                "timeout": 3,
            },
        }, {"cluster": cluster or {}}, sections)
        node = Daemon(d, settings)
        if download_dir is not None:
            node.dl = download_dir
            node.settings["daemon"]["download_dir"] = download_dir
            node.write_config()
        os.makedirs(node.dl, exist_ok=True)
        self.nodes[name] = node
        if start:
            node.start()
        return node

    def three_nodes(self, **kw):
        """n0 coordinates and fetches, n1 and n2 fetch."""
        return (self.add_node("n0", "both", **kw),
                self.add_node("n1", "fetch", **kw),
                self.add_node("n2", "fetch", **kw))

    def sigstop(self, node):
        self.stopped.add(node.pid)
        os.kill(node.pid, signal.SIGSTOP)

    def sigcont(self, node):
        os.kill(node.pid, signal.SIGCONT)
        self.stopped.discard(node.pid)

    # -- looking -------------------------------------------------------------

    def stats(self, node):
        p = subprocess.run([ft.FETCHCTL, "-s", node.socket, "--json",
                            "stats"], capture_output=True, text=True,
                           timeout=30 * ft.SCALE)
        self.assertEqual(p.returncode, 0, "fetchctl stats: %s" % p.stderr)
        return json.loads(p.stdout)

    def cluster_stats(self, node):
        return self.stats(node)["cluster"]

    def wait_cluster_state(self, node, state, timeout=20):
        return wait_for(
            lambda: (lambda c: c if c["state"] == state else None)(
                self.cluster_stats(node)),
            timeout, "node %s to say cluster %s" % (
                node.setting("cluster", "consumer"), state),
            node.log_tail)

    def r(self, *args):
        """One command on a fresh connection to our redis-server."""
        c = Redis(self.redis.port)
        try:
            return c.call(*args)
        finally:
            c.close()

    def pending_total(self):
        return self.r("XPENDING", STREAM, GROUP)[0]

    def pending_of(self, consumer):
        """[(id, deliveries)] of the entries pending for consumer."""
        return [(e[0], e[3]) for e in
                self.r("XPENDING", STREAM, GROUP, "-", "+", 10000, consumer)]

    def entry(self, entry_id):
        """The fields of a stream entry, or None when deleted."""
        r = self.r("XRANGE", STREAM, entry_id, entry_id)
        return fields(r[0][1]) if r else None

    def stream_entries(self, key):
        """[(id, {fields})] of a whole stream."""
        return [(e[0], fields(e[1])) for e in self.r("XRANGE", key, "-", "+")]

    def wait_group_empty(self, timeout=30):
        """Nothing pending in the group and nothing left in the stream."""
        wait_for(lambda: self.pending_total() == 0 and
                 self.r("XLEN", STREAM) == 0, timeout,
                 "the group to have nothing pending and the stream to be "
                 "empty",
                 lambda: "XPENDING %r, XLEN %r" % (
                     self.r("XPENDING", STREAM, GROUP),
                     self.r("XLEN", STREAM)))

    def held_by(self, consumer, urls):
        """Indices into urls of the entries pending for consumer."""
        index = {u.url: k for k, u in enumerate(urls)}
        out = set()
        for entry_id, _ in self.pending_of(consumer):
            f = self.entry(entry_id)
            if f is not None and f.get("u") in index:
                out.add(index[f["u"]])
        return out

    def result_rows(self, node, job):
        """Rows of the job's J.result while it is active (or [])."""
        path = node.spool_path("active", job + ".result")
        try:
            return ft.parse_result(path)
        except (FileNotFoundError, AssertionError):
            return []

    # -- jobs and checks ---------------------------------------------------

    def make_urls(self, prefix, n, size=None, **knobs):
        if size is None:
            def size(k):
                return 200 + (k * 37) % 1800
        return [U(self.server, "%s%d" % (prefix, k), size(k)
                  if callable(size) else size, seed=k % 251, **knobs)
                for k in range(n)]

    def drop(self, node, job, urls):
        self.jobs.add(job)
        node.drop_job(job, [u.url for u in urls])

    def assert_rows(self, rows, urls, node_names=None):
        """Every URL once, in job order, fetched ok by a known node."""
        got = [r.url for r in rows]
        want = [u.url for u in urls]
        if got != want:
            dup = [u for u, n in collections.Counter(got).items() if n > 1]
            self.fail("J.result has %d rows for %d URLs; duplicated %r, "
                      "missing %r" % (len(got), len(want), dup[:5],
                                      sorted(set(want) - set(got))[:5]))
        names = set(node_names or self.nodes)
        for row in rows:
            self.assert_row(row, "ok")
            self.assertIn(row.node, names, repr(row))

    def assert_files(self, job, rows, urls, dirs=None):
        """Each ok row's file is byte-exact in the download dir of the
        node that fetched it (dirs: node name -> download dir)."""
        for row, u in zip(rows, urls):
            if row.outcome != "ok":
                continue
            top = (dirs or {}).get(row.node) or self.nodes[row.node].dl
            self.assertEqual(row.path, u.name, repr(row))
            self.assert_file(os.path.join(top, job, u.name), u.body())

    def parts_in(self, *tops):
        out = []
        for top in tops:
            for dirpath, _, filenames in os.walk(top):
                out += [os.path.join(dirpath, f) for f in filenames
                        if f.endswith(".part")]
        return out

    def assert_no_parts(self, *nodes):
        tops = sorted({n.dl for n in (nodes or self.nodes.values())})
        self.assertEqual(self.parts_in(*tops), [], "leftover .part files")

    def assert_finished_once(self, node, job):
        """The job and its result in done/ and nowhere else."""
        self.assertEqual(sorted(node.spool_entries(job)),
                         [("done", job), ("done", job + ".result")],
                         node.spool_listing())

    def wait_done(self, node, job, timeout=60):
        state, rows = node.wait_done(job, timeout)
        self.assertEqual(state, "done", "job %s ended in %s/" % (job, state))
        return rows


# -- the tests ---------------------------------------------------------------

class TestCluster(ClusterCase):

    def test_01_five_thousand_urls_over_three_nodes(self):
        n0, n1, n2 = self.three_nodes(count=8)
        urls = self.make_urls("a", 5000)
        self.drop(n0, "j1", urls)
        rows = self.wait_done(n0, "j1", timeout=120)
        self.assert_rows(rows, urls)
        self.assert_finished_once(n0, "j1")
        self.assert_files("j1", rows, urls)
        self.assert_no_parts()
        self.assertEqual(self.pending_total(), 0)
        self.assertEqual(self.r("XLEN", STREAM), 0)
        by = collections.Counter(r.node for r in rows)
        self.assertEqual(set(by), {"n0", "n1", "n2"},
                         "URLs per node: %r" % by)
        # The coordinator's own result stream is drained too.
        wait_for(lambda: self.r("XLEN", RESULTS + "n0") == 0, 10,
                 "n0's result stream to be empty")
        # And the heartbeat's view in stats: every node, an empty stream.
        def view():
            c = self.cluster_stats(n0)
            names = sorted(n["node"] for n in c["nodes"])
            st = c["stream"]
            return c if names == ["n0", "n1", "n2"] and \
                st["length"] == 0 and st["pending"] == 0 and \
                st["dead"] == 0 else None
        wait_for(view, 10, "n0's stats to show the three nodes and an "
                 "empty stream", lambda: repr(self.cluster_stats(n0)))

    def test_02_killed_worker_entries_are_taken_over(self):
        n0, n1, n2 = self.three_nodes()
        urls = self.make_urls("b", 36, delay=1500)
        self.drop(n0, "j2", urls)
        wait_for(lambda: self.held_by("n1", urls), 20,
                 "n1 to hold entries")
        n1.kill9()
        # What it held when it died stays pending for it until claimed.
        held = self.held_by("n1", urls)
        self.assertTrue(held, "n1 finished everything before it died")
        rows = self.wait_done(n0, "j2", timeout=60)
        self.assert_rows(rows, urls)
        for k in held:
            self.assertIn(rows[k].node, ("n0", "n2"),
                          "entry held by the dead node: %r" % rows[k])
        claimed = sum(self.cluster_stats(n)["claimed"] for n in (n0, n2))
        self.assertGreaterEqual(claimed, len(held))
        self.assert_files("j2", rows, urls)
        self.assert_no_parts(n0, n2)
        self.wait_group_empty()

    def part_sizes(self, node, job, urls, minimum):
        """{name: size} of node's NAME.node.part files in the job, once
        each URL has one of at least minimum bytes; else None."""
        tag = node.setting("cluster", "consumer")
        out = {}
        for u in urls:
            try:
                n = os.stat(os.path.join(node.dl, job, "%s.%s.part" % (
                    u.name, tag))).st_size
            except FileNotFoundError:
                return None
            if n < minimum:
                return None
            out[u.name] = n
        return out

    def assert_resumed(self, urls, had, size):
        """Each URL's last request asked for the rest of it from where
        its .part had got to, and got a 206 with just that."""
        for u in urls:
            reqs = self.server.requests_for(u.name)
            resumed = [r for r in reqs if r["range"] and r["status"] == 206]
            self.assertTrue(resumed, "%s was not resumed: %r" % (u.name,
                                                                  reqs))
            start = int(re.match(r"bytes=(\d+)-$", resumed[-1]["range"])
                        .group(1))
            self.assertGreaterEqual(start, had[u.name], reqs)
            self.assertEqual(start + resumed[-1]["sent"], size, reqs)
            self.assertEqual(len([r for r in reqs if not r["range"]]), 1,
                             "%s fetched from the start again: %r"
                             % (u.name, reqs))

    def test_03_restarted_worker_resumes_with_range(self):
        # No take-over, however slow the restart: n1 alone fetches.
        n0 = self.add_node("n0", "coordinate")
        n1 = self.add_node("n1", "fetch", cluster={"claim_idle": 30})
        size = 400 * 1024
        urls = self.make_urls("c", 4, size=size, drip=100 * 1024)
        self.drop(n0, "j3", urls)
        wait_for(lambda: self.part_sizes(n1, "j3", urls, 32 * 1024), 20,
                 "n1 to have a .part of every URL")
        n1.kill9()
        had = self.part_sizes(n1, "j3", urls, 1)
        self.assertIsNotNone(had)
        n1.start()
        rows = self.wait_done(n0, "j3", timeout=30)
        self.assert_rows(rows, urls)
        self.assert_resumed(urls, had, size)
        self.assert_files("j3", rows, urls)
        self.assert_no_parts()
        self.wait_group_empty()

    def test_04_coordinator_killed_and_restarted(self):
        n0, n1, n2 = self.three_nodes()
        urls = self.make_urls("d", 240, delay=100)
        self.drop(n0, "j4", urls)
        wait_for(lambda: len(self.result_rows(n0, "j4")) >= 40, 30,
                 "40 rows in j4.result")
        n0.kill9()
        n0.start()
        rows = self.wait_done(n0, "j4", timeout=60)
        # A URL n0's own fetch side had finished, but whose row the crash
        # lost, is found done in n0's download dir by the next run (as in
        # embedded mode): its row cannot name the node ("-").
        self.assert_rows(rows, urls, ("n0", "n1", "n2", "-"))
        self.assert_finished_once(n0, "j4")
        self.assert_files("j4", rows, urls, dirs={"-": n0.dl})
        # URLs out before the crash and added again after it are fetched
        # twice at worst: those results find nothing and are dropped.
        self.wait_group_empty()
        self.assert_no_parts()

    def test_05_redis_killed_and_restarted(self):
        n0, n1, n2 = self.three_nodes()
        urls = self.make_urls("e", 200, delay=100)
        self.drop(n0, "j5", urls)
        wait_for(lambda: len(self.result_rows(n0, "j5")) >= 30, 30,
                 "30 rows in j5.result")
        self.redis.kill9()
        for n in (n0, n1, n2):
            c = self.wait_cluster_state(n, "down")
            self.assertNotEqual(c["error"], "")
        done_before = len(self.result_rows(n0, "j5"))
        self.assertLess(done_before, len(urls), "finished before the kill")
        self.redis.start()
        rows = self.wait_done(n0, "j5", timeout=60)
        self.assert_rows(rows, urls)
        self.assert_files("j5", rows, urls)
        for n in (n0, n1, n2):
            self.wait_cluster_state(n, "up")
        self.wait_group_empty()
        self.assert_no_parts()

    def test_06_partitioned_node_results_are_refused(self):
        self.proxy = Proxy(self.tmp, self.redis.port)
        self.proxy.start()
        n0 = self.add_node("n0", "both")
        n1 = self.add_node("n1", "fetch")
        n2 = self.add_node("n2", "fetch", redis_port=self.proxy.port)
        urls = self.make_urls("f", 30, delay=2000)
        self.drop(n0, "j6", urls)
        wait_for(lambda: self.held_by("n2", urls), 20, "n2 to hold entries")
        self.proxy.partition()
        held = self.held_by("n2", urls)
        self.assertTrue(held)
        self.wait_cluster_state(n2, "down")
        # Its entries go to the others once idle past claim_idle.
        wait_for(lambda: not self.pending_of("n2"), 30,
                 "the entries of n2 to be taken over")
        self.proxy.heal()
        self.wait_cluster_state(n2, "up")
        c = wait_for(lambda: (lambda c: c if c["refused"] > 0 and
                              c["fetching"] == 0 and
                              c["results_waiting"] == 0 else None)(
                                  self.cluster_stats(n2)), 30,
                     "n2's late results to be refused")
        self.assertGreater(c["refused"], 0)
        rows = self.wait_done(n0, "j6", timeout=60)
        self.assert_rows(rows, urls)
        for k in held:
            self.assertIn(rows[k].node, ("n0", "n1"), repr(rows[k]))
        self.assert_files("j6", rows, urls)
        self.wait_group_empty()
        self.assert_no_parts()

    def test_07_stopped_worker_does_not_clobber(self):
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared)
        n0, n1, n2 = self.three_nodes(download_dir=shared)
        size = 64 * 1024
        urls = self.make_urls("g", 12, size=size, drip=16 * 1024)
        self.drop(n0, "j7", urls)
        top = os.path.join(shared, "j7")

        def n1_writing():
            held = self.held_by("n1", urls)
            return held if any(
                os.path.exists(os.path.join(top, urls[k].name + ".n1.part"))
                for k in held) else None
        wait_for(n1_writing, 20, "n1 to be writing a .part")
        self.sigstop(n1)
        held = self.held_by("n1", urls)
        self.assertTrue(held)
        wait_for(lambda: not self.pending_of("n1"), 30,
                 "the entries of the stopped n1 to be taken over")
        rows = self.wait_done(n0, "j7", timeout=60)
        self.sigcont(n1)
        c = wait_for(lambda: (lambda c: c if c["refused"] > 0 and
                              c["fetching"] == 0 and
                              c["results_waiting"] == 0 else None)(
                                  self.cluster_stats(n1)), 30,
                     "n1's late results to be refused")
        self.assertGreater(c["refused"], 0)
        self.assert_rows(rows, urls)
        for k in held:
            self.assertIn(rows[k].node, ("n0", "n2"), repr(rows[k]))
        self.assert_files("j7", rows, urls,
                          dirs={n: shared for n in self.nodes})
        self.assertEqual(sorted(os.listdir(top)),
                         sorted(u.name for u in urls))
        self.wait_group_empty()

    def test_08_poison_entry_is_dead_lettered(self):
        # Deliveries by restarts alone (no take-over by idle time).
        limits = {"max_deliveries": 2, "claim_idle": 30}
        n0 = self.add_node("n0", "coordinate", cluster=limits)
        n1 = self.add_node("n1", "fetch", cluster=limits)
        urls = self.make_urls("h", 4)
        poison = U(self.server, "poison", 100, hang=1)
        urls[1] = poison
        self.drop(n0, "j8", urls)
        # Each time n1 holds the poison entry, and nothing else, it is
        # killed and started again under its name: a crash loop under a
        # service manager. Each start is one more delivery.
        def poison_held(last):
            if self.r("XLEN", DEAD) > 0:
                return "dead"
            held = self.pending_of("n1")
            if len(held) != 1:
                return None
            f = self.entry(held[0][0])
            if f is None or f.get("u") != poison.url or held[0][1] <= last:
                return None
            return held[0][1]
        kills, last = 0, 0
        while True:
            got = wait_for(lambda: poison_held(last), 20,
                           "n1 to hold the poison entry (delivery %d)"
                           % (last + 1),
                           lambda: "pending: %r" % (self.pending_of("n1"),))
            if got == "dead":
                break
            self.assertEqual(got, last + 1, "deliveries of the poison entry")
            self.assertLess(kills, 2, "delivered %d times, not dead-lettered"
                            % got)
            last = got
            n1.kill9()
            kills += 1
            n1.start()
        self.assertEqual(kills, 2)
        dead = self.stream_entries(DEAD)
        self.assertEqual(len(dead), 1, dead)
        wait_for(lambda: self.cluster_stats(n0)["stream"]["dead"] == 1, 10,
                 "n0's stats to count the dead letter")
        self.assertEqual(dead[0][1]["u"], poison.url)
        self.assertEqual(dead[0][1]["deliveries"], "2")
        # A failed row fails the job.
        state, rows = n0.wait_done("j8", timeout=30)
        self.assertEqual(state, "failed")
        self.assertEqual([r.url for r in rows], [u.url for u in urls])
        self.assert_row(rows[1], "failed")
        self.assertIn("dead-lettered: delivered 2 times without a result",
                      rows[1].error)
        for k in (0, 2, 3):
            self.assert_row(rows[k], "ok")
        self.wait_group_empty()

    def test_09_nodes_start_before_redis(self):
        self.redis.kill9()
        n0, n1, n2 = self.three_nodes()
        for n in (n0, n1, n2):
            c = self.wait_cluster_state(n, "down")
            self.assertNotEqual(c["error"], "")
        urls = self.make_urls("i", 30)
        self.drop(n0, "j9", urls)
        self.assertTrue(ft.still_for(lambda: n0.finished("j9") is None and
                                     n0.running(), 1))
        self.redis.start()
        rows = self.wait_done(n0, "j9", timeout=60)
        self.assert_rows(rows, urls)
        self.assert_files("j9", rows, urls)
        self.wait_group_empty()

    def test_10_shared_download_dir(self):
        shared = os.path.join(self.tmp, "shared")
        os.mkdir(shared)
        n0, n1, n2 = self.three_nodes(download_dir=shared)
        urls = self.make_urls("k", 300, delay=20)
        self.drop(n0, "j10", urls)
        rows = self.wait_done(n0, "j10", timeout=60)
        self.assert_rows(rows, urls)
        self.assertEqual(set(r.node for r in rows), {"n0", "n1", "n2"})
        self.assert_files("j10", rows, urls,
                          dirs={n: shared for n in self.nodes})
        self.assertEqual(sorted(os.listdir(shared)), ["j10"])
        self.assertEqual(sorted(os.listdir(os.path.join(shared, "j10"))),
                         sorted(u.name for u in urls))
        self.wait_group_empty()

    def test_11_hostile_entries_are_refused(self):
        n0, n1, n2 = self.three_nodes()
        evil = self.server.url("/f/evil", key="evil")
        bad = [
            # A name climbing out of download_dir.
            ("nonexistent-node", "j11", "0", evil, "../../etc/x"),
            # A scheme fetchd does not fetch.
            ("nonexistent-node", "j11", "1", "file:///etc/passwd", "passwd"),
            # A job name climbing out.
            ("nonexistent-node", "../../j11", "2", evil, "y"),
            # An index that is not one.
            ("nonexistent-node", "j11", "-3", evil, "z"),
            # For a real coordinator, a job it does not have.
            ("n0", "nojob", "0", evil, "../w"),
            # A coordinator name that is no node name.
            ("../n0", "j11", "4", evil, "v"),
        ]
        ids = []
        for c, j, i, u, n in bad:
            ids.append(self.r("XADD", STREAM, "*", "c", c, "j", j, "i", i,
                              "u", u, "n", n))
        nodes = (n0, n1, n2)
        wait_for(lambda: sum(self.cluster_stats(n)["bad_entries"]
                             for n in nodes) >= len(bad), 20,
                 "every hostile entry to be refused")
        self.wait_group_empty()
        self.assertEqual(sum(self.cluster_stats(n)["bad_entries"]
                             for n in nodes), len(bad))
        # Each result went to the coordinator the entry names, when that
        # is a node name, else to the dead letters.
        unknown = self.stream_entries(RESULTS + "nonexistent-node")
        self.assertEqual(sorted(f["x"] for _, f in unknown), sorted(ids[:4]))
        for _, f in unknown:
            self.assertEqual(f["o"], "fail", f)
            self.assertRegex(f["e"], r"^refused by node n[012]: ", f)
        dead = self.stream_entries(DEAD)
        self.assertEqual([f["x"] for _, f in dead], [ids[5]], dead)
        self.assertIn("bad coordinator name", dead[0][1]["e"])
        # n0's own: its result arrives and finds no such job.
        wait_for(lambda: self.cluster_stats(n0)["stale"] >= 1, 10,
                 "n0 to drop the result for a job it does not have")
        # Nothing fetched, nothing written anywhere.
        self.assertEqual(self.server.requests_for("evil"), [])
        for n in nodes:
            self.assertEqual(os.listdir(n.dl), [], n.dl)
            self.assertFalse(os.path.lexists(os.path.join(n.dir, "etc")))
            self.assertFalse(os.path.lexists(os.path.join(n.dir, "w")))
        self.assertFalse(os.path.lexists(os.path.join(self.tmp, "j11")))
        # And the nodes go on working.
        urls = self.make_urls("m", 20)
        self.drop(n0, "j11", urls)
        rows = self.wait_done(n0, "j11")
        self.assert_rows(rows, urls)
        self.assert_files("j11", rows, urls)
        for n in nodes:
            self.assertTrue(n.running())

    def test_12_deleted_pending_result_is_not_read_for_ever(self):
        # A result pending for the coordinator whose entry was deleted
        # from the result stream (by hand) comes back with nil fields.
        n0 = self.add_node("n0", "coordinate", start=False)
        key = RESULTS + "n0"
        self.r("XGROUP", "CREATE", key, GROUP, "0", "MKSTREAM")
        rid = self.r("XADD", key, "*", "j", "gone", "i", "0", "o", "ok")
        self.r("XREADGROUP", "GROUP", GROUP, "n0", "COUNT", 10, "STREAMS",
               key, ">")
        self.r("XDEL", key, rid)
        self.assertEqual(self.r("XPENDING", key, GROUP)[0], 1)
        n0.start()
        wait_for(lambda: self.r("XPENDING", key, GROUP)[0] == 0, 10,
                 "n0 to acknowledge the deleted result")

        def reads():
            info = self.r("INFO", "commandstats")
            m = re.search(r"cmdstat_xreadgroup:calls=(\d+)", info)
            return int(m.group(1)) if m else 0
        before = reads()
        ft.still_for(n0.running, 2)
        # Blocking reads of 2 s each: a handful, not a busy loop.
        self.assertLess(reads() - before, 10)
        urls = self.make_urls("n", 5)
        self.add_node("n1", "fetch")
        self.drop(n0, "j12", urls)
        rows = self.wait_done(n0, "j12")
        self.assert_rows(rows, urls)

    def test_13_stopped_worker_sends_its_results_first(self):
        n0 = self.add_node("n0", "coordinate")
        n1 = self.add_node("n1", "fetch", daemon={"shutdown_grace": 20})
        # Each URL takes longer than claim_idle; n1 has one worker each.
        urls = self.make_urls("p", 4, delay=(CLAIM_IDLE + 2) * 1000)
        self.drop(n0, "j13", urls)
        wait_for(lambda: len(self.held_by("n1", urls)) == len(urls), 20,
                 "n1 to hold every entry")
        # An idle node that would take over any lease let lapse.
        self.add_node("n2", "fetch")
        # SIGTERM: n1's transfers end within the grace period, keeping
        # their leases meanwhile, and their results reach Redis before it
        # exits.
        self.assertEqual(n1.stop(), 0, n1.log_tail())
        self.assertEqual(self.pending_of("n1"), [])
        rows = self.wait_done(n0, "j13")
        self.assert_rows(rows, urls)
        for row in rows:
            self.assertEqual(row.node, "n1", repr(row))
        for u in urls:
            self.assertEqual(len(self.server.requests_for(u.name)), 1,
                             "%s fetched more than once" % u.name)
        self.assert_files("j13", rows, urls)
        self.assert_no_parts()
        self.wait_group_empty()
    def test_14_grace_cut_entries_stay_with_their_node(self):
        n0 = self.add_node("n0", "coordinate")
        n1 = self.add_node("n1", "fetch", daemon={"shutdown_grace": 1},
                           cluster={"claim_idle": 30})
        size = 400 * 1024
        urls = self.make_urls("q", 3, size=size, drip=100 * 1024)
        self.drop(n0, "j14", urls)
        wait_for(lambda: self.part_sizes(n1, "j14", urls, 32 * 1024), 20,
                 "n1 to have a .part of every URL")
        # SIGTERM, the grace period ends before the transfers: they are
        # cut short, and their entries stay n1's with their .part files.
        self.assertEqual(n1.stop(), 0, n1.log_tail())
        self.assertEqual(self.held_by("n1", urls), set(range(len(urls))))
        had = self.part_sizes(n1, "j14", urls, 1)
        self.assertIsNotNone(had)
        n1.start()
        rows = self.wait_done(n0, "j14", timeout=30)
        self.assert_rows(rows, urls)
        self.assert_resumed(urls, had, size)
        self.assert_files("j14", rows, urls)
        self.assert_no_parts()
        self.wait_group_empty()

    def test_15_redis_restarted_without_its_data(self):
        n0, n1, n2 = self.three_nodes()
        urls = self.make_urls("r", 150, delay=150)
        self.drop(n0, "j15", urls)
        wait_for(lambda: len(self.result_rows(n0, "j15")) >= 20, 30,
                 "20 rows in j15.result")
        # Redis comes back empty: the stream, the groups, the functions
        # and every pending entry are gone.
        self.redis.kill9()
        shutil.rmtree(self.redis.dir)
        self.redis = RedisServer(self.redis.dir, self.redis.port)
        self.redis.start()
        rows = self.wait_done(n0, "j15", timeout=60)
        self.assert_rows(rows, urls)
        self.assert_files("j15", rows, urls)
        # The coordinator added again what was out when the data went.
        self.assertGreater(self.cluster_stats(n0)["readded"], 0)
        self.wait_group_empty()
        self.assert_no_parts()

    def test_16_wrong_password_is_reported(self):
        bad = os.path.join(self.tmp, "bad.pw")
        with open(bad, "w") as f:
            f.write("not-" + PASSWORD + "\n")
        n0 = self.add_node("n0", "both", cluster={"password_file": bad})
        c = wait_for(lambda: (lambda c: c if "AUTH" in c["error"] else None)(
            self.cluster_stats(n0)), 20, "n0 to report the refused AUTH")
        self.assertEqual(c["state"], "down")
        self.assertIn("AUTH refused", n0.log_text())
        # Once the password file is right, a restart connects.
        with open(bad, "w") as f:
            f.write(PASSWORD + "\n")
        n0.restart()
        self.wait_cluster_state(n0, "up")

    def test_17_cancel_in_cluster_mode(self):
        n0, n1, n2 = self.three_nodes()
        urls = self.make_urls("s", 40, delay=1000)
        self.drop(n0, "j17", urls)
        wait_for(lambda: self.r("XLEN", STREAM) > 0 and
                 self.pending_total() > 0, 20, "URLs out in the stream")
        p = subprocess.run([ft.FETCHCTL, "-s", n0.socket, "cancel", "j17"],
                           capture_output=True, text=True,
                           timeout=30 * ft.SCALE)
        self.assertEqual((p.returncode, p.stdout), (0, "cancelled j17\n"),
                         p.stderr)
        state, rows = n0.wait_done("j17", timeout=20)
        self.assertEqual(state, "failed")
        self.assertEqual([r.url for r in rows], [u.url for u in urls])
        cancelled = [r for r in rows if r.outcome != "ok"]
        self.assertTrue(cancelled)
        for r in cancelled:
            self.assertIn("cancelled", r.error, repr(r))
        for row, u in zip(rows, urls):
            if row.ok:
                self.assert_file(os.path.join(
                    self.nodes[row.node].dl, "j17", u.name), u.body())
        # What was out is deleted from the stream: what was running ends
        # (its result refused or dropped), the rest is not fetched.
        self.wait_group_empty()
        for n in (n0, n1, n2):
            wait_for(lambda: (lambda c: c["fetching"] == 0 and
                              c["results_waiting"] == 0)(
                                  self.cluster_stats(n)), 20,
                     "the nodes to be done with the cancelled URLs")
        self.assertEqual(self.cluster_stats(n0)["out"], 0)
        # At most what the nodes had taken: one URL per worker running
        # and as many queued (3 x 2 x 4); a queued one found deleted by a
        # renewal is dropped instead of started.
        fetched = {r["key"] for r in self.server.log()}
        self.assertLessEqual(len(fetched), 24, sorted(fetched))
        self.assertLess(len(fetched), len(urls))

    def test_18_partitioned_coordinator(self):
        self.proxy = Proxy(self.tmp, self.redis.port)
        self.proxy.start()
        n0 = self.add_node("n0", "coordinate", redis_port=self.proxy.port)
        n1 = self.add_node("n1", "fetch")
        n2 = self.add_node("n2", "fetch")
        urls = self.make_urls("t", 200, delay=100)
        self.drop(n0, "j18", urls)
        wait_for(lambda: len(self.result_rows(n0, "j18")) >= 20, 30,
                 "20 rows in j18.result")
        self.proxy.partition()
        self.wait_cluster_state(n0, "down")
        # The fetching nodes finish what is out meanwhile.
        wait_for(lambda: self.r("XLEN", STREAM) == 0, 30,
                 "the stream to be worked off")
        self.proxy.heal()
        rows = self.wait_done(n0, "j18", timeout=60)
        self.assert_rows(rows, urls)
        self.assert_files("j18", rows, urls)
        self.wait_group_empty()
        # URLs done while n0 was away are known by their results, not
        # added again: only an add whose answer the partition swallowed
        # may be (a few at most, against the ~150 out).
        readded = self.cluster_stats(n0)["readded"]
        self.assertLessEqual(readded, 10)
        by = collections.Counter(r["key"] for r in self.server.log())
        twice = sorted(k for k, n in by.items() if n > 1)
        self.assertLessEqual(len(twice), readded, twice)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--proxy"]:
        proxy_main(sys.argv[2:])
    else:
        ft.main()
