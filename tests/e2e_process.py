#!/usr/bin/env python3
"""
e2e_process.py: what only the process engine (workers.model = process) has
to get right, checked on the real fetchd against tests/httpd.py: its worker
children are started once and replaced when they die, a child killed in the
middle of a transfer costs nothing but a resumed request, no zombie or
orphan is ever left, and a child holds no descriptor of the daemon's.

    FETCHD=src/fetchd python3 tests/e2e_process.py -v

Children are found through /proc (every process whose parent is fetchd) and
told apart from a later process with a reused pid by their start time.
"""

import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, body, config  # noqa: E402

KIB = 1024
WORKER_COMM = "fetchd-worker"
RESTART_BURST = 10             # engine_process.c: restarts a second


# -- /proc -------------------------------------------------------------------

class Proc:
    """One line of /proc/PID/stat: pid, comm, state, ppid, start time."""

    def __init__(self, pid, comm, state, ppid, start):
        self.pid, self.comm, self.state = pid, comm, state
        self.ppid, self.start = ppid, start

    @property
    def ident(self):
        return (self.pid, self.start)

    def __repr__(self):
        return "<pid %d %s %s ppid %d>" % (self.pid, self.comm, self.state,
                                            self.ppid)


def proc_stat(pid):
    """Proc for pid, or None when there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: it ends at the last ")".
    comm = data[data.index("(") + 1:data.rindex(")")]
    rest = data[data.rindex(")") + 2:].split()
    return Proc(pid, comm, rest[0], int(rest[1]), int(rest[19]))


def children_of(ppid):
    """Every process (zombies included) whose parent is ppid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        p = proc_stat(int(name))
        if p is not None and p.ppid == ppid:
            out.append(p)
    return out


def alive(ident):
    """The process (pid, start time) still exists and is not a zombie."""
    p = proc_stat(ident[0])
    return p is not None and p.start == ident[1] and p.state != "Z"


def gone(ident):
    """No such process any more, not even a zombie."""
    p = proc_stat(ident[0])
    return p is None or p.start != ident[1]


def kill_if_alive(ident):
    """SIGKILL (pid, start time) if that very process still runs."""
    if alive(ident):
        try:
            os.kill(ident[0], signal.SIGKILL)
        except ProcessLookupError:
            pass


def fd_links(pid):
    """{fd number: readlink target} of pid ({} when it is gone)."""
    out = {}
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except (FileNotFoundError, ProcessLookupError):
        return out
    for n in names:
        try:
            out[int(n)] = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


class ProcessTestCase(FetchdTestCase):
    """Every test here runs the process engine, whatever FETCHD_MODEL says."""

    settings = {"workers": {"model": "process", "count": 3}}

    def count(self):
        return int(self.daemon.setting("workers", "count"))

    def workers(self):
        """fetchd's live worker children."""
        return [p for p in children_of(self.daemon.pid)
                if p.state != "Z" and p.comm == WORKER_COMM]

    def zombies(self):
        return [p for p in children_of(self.daemon.pid) if p.state == "Z"]

    def wait_workers(self, n, exclude=(), timeout=10):
        """Wait until fetchd has exactly n live workers, none of them in
        exclude (idents), and no zombie child; returns them."""
        def check():
            ws = self.workers()
            if len(ws) != n or any(w.ident in exclude for w in ws):
                return None
            if self.zombies():
                return None
            return ws
        return ft.wait_for(
            check, timeout, "%d worker children (and no zombie)" % n,
            lambda: "children: %r\n%s" % (children_of(self.daemon.pid),
                                         self.daemon.log_tail()))

    def stats(self):
        """The daemon's `stats` object, over the control socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10 * ft.SCALE)
        try:
            s.connect(self.daemon.socket)
            s.sendall(b"stats\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            s.close()
        return json.loads(buf)

    def worker_with_open(self, path):
        """The worker holding path open, or None."""
        for w in self.workers():
            if path in fd_links(w.pid).values():
                return w
        return None


class TestProcessEngine(ProcessTestCase):

    def test_children_started_once(self):
        """workers.count children at start, the same ones after a job of
        many URLs: fork and exec are paid once, not per URL."""
        before = {w.ident for w in self.wait_workers(self.count())}
        urls = [self.url("m%02d.bin" % i, size=1000 + i, seed=i)
                for i in range(40)]
        self.drop_job("many", urls)
        state, rows = self.wait_done("many", 30)
        self.assertEqual(state, "done")
        for i, row in enumerate(rows):
            self.assert_row(row, "ok", 200, 1000 + i, 1, "m%02d.bin" % i)
            self.assert_file(os.path.join(self.job_dir("many"),
                                          "m%02d.bin" % i), body(1000 + i, i))
        after = {w.ident for w in self.wait_workers(self.count())}
        self.assertEqual(before, after)
        for w in self.workers():
            with open("/proc/%d/cmdline" % w.pid, "rb") as f:
                argv = f.read().split(b"\0")
            self.assertEqual(argv[1:3], [b"--worker", b"3"], argv)

    @config(daemon={"shutdown_grace": 1})
    def test_children_hold_no_daemon_descriptors(self):
        """Idle: fds 0-3 only, 3 a socket. Busy: besides those, only
        sockets and paths under the download directory. Never the spool,
        the control socket or the inotify descriptor the daemon holds."""
        ws = self.wait_workers(self.count())
        mine = fd_links(self.daemon.pid)
        self.assertTrue(any("inotify" in t for t in mine.values()), mine)
        for w in ws:
            links = fd_links(w.pid)
            self.assertEqual(sorted(links), [0, 1, 2, 3], (w, links))
            self.assertTrue(links[3].startswith("socket:"), links)
            for fd in (0, 1, 2):
                self.assertEqual(links[fd], mine.get(fd), (w, fd))

        size = 400 * KIB
        u = self.url("held.bin", size=size, seed=9, drip=100 * KIB,
                     key="kheld")
        self.drop_job("fds", [u])
        part = os.path.join(self.job_dir("fds"), "held.bin.part")
        self.wait_file_size(part, 1)
        busy = ft.wait_for(lambda: self.worker_with_open(part), 10,
                           "a worker holding %s open" % part)
        spool = os.path.realpath(self.daemon.spool)
        dl = os.path.realpath(self.daemon.dl)
        for w in self.workers():
            links = fd_links(w.pid)
            for fd, target in links.items():
                if fd <= 3:
                    continue
                self.assertNotIn("inotify", target, (w, fd))
                self.assertFalse(target.startswith(spool), (w, fd, target))
                self.assertFalse(target == os.path.realpath(
                    self.daemon.socket), (w, fd, target))
                self.assertTrue(target.startswith("socket:") or
                                target.startswith(dl + "/"),
                                (w, fd, target))
        self.assertIsNotNone(busy)

    @config(workers={"count": 2, "per_host": 2}, http={"retries": 3})
    def test_kill9_child_mid_transfer(self):
        """The killed child's transfer resumes with Range on another
        attempt, every file is byte-exact, the child is reaped (no zombie)
        and replaced, and the other transfers are not disturbed."""
        start = {w.ident for w in self.wait_workers(2)}
        slow = 300 * KIB
        specs = [("a.bin", 5000, 1, "ka", {}),
                 ("slow.bin", slow, 2, "kslow", {"drip": 100 * KIB}),
                 ("b.bin", 7000, 3, "kb", {}),
                 ("c.bin", 9000, 4, "kc", {})]
        urls = [self.url(n, size=s, seed=seed, key=k, **extra)
                for n, s, seed, k, extra in specs]
        self.drop_job("jk", urls)
        part = os.path.join(self.job_dir("jk"), "slow.bin.part")
        self.wait_file_size(part, 20 * KIB)
        victim = ft.wait_for(lambda: self.worker_with_open(part), 10,
                             "the worker writing %s" % part)
        self.assertIn(victim.ident, start)
        # The bytes a child has written so far reach the daemon's stats:
        # more than the three small files hold.
        small = sum(sp[1] for sp in specs if sp[3] != "kslow")
        st = ft.wait_for(lambda: (lambda st: st if st["bytes_total"] >=
                                  small + 10 * KIB else None)(self.stats()),
                         10, "in-flight bytes in stats")
        self.assertEqual(st["model"], "process", st)
        self.assertGreaterEqual(st["process"]["workers_busy"], 1, st)
        self.assertEqual(st["process"]["children_restarted"], 0, st)
        os.kill(victim.pid, signal.SIGKILL)
        ft.wait_for(lambda: not alive(victim.ident), 10,
                    "the killed worker to die")
        # Replaced, and reaped: no zombie, the count is back.
        ws = self.wait_workers(2, exclude={victim.ident})
        self.assertEqual(len({w.ident for w in ws} - start), 1, ws)
        self.assertEqual(self.stats()["process"]["children_restarted"], 1)

        state, rows = self.wait_done("jk", 30)
        self.assertEqual(state, "done")
        for row, (name, size, seed, key, _) in zip(rows, specs):
            self.assert_row(row, "ok", None, size, None, name)
            self.assert_file(os.path.join(self.job_dir("jk"), name),
                             body(size, seed))
            reqs = self.server.requests_for(key)
            if key == "kslow":
                self.assertEqual(row.attempts, 2, row)
                self.assertEqual(len(reqs), 2, reqs)
                self.assertIsNone(reqs[0]["range"])
                start_at = int(reqs[1]["range"].split("=")[1].split("-")[0])
                self.assertGreater(start_at, 0, reqs[1])
                self.assertEqual(reqs[1]["status"], 206, reqs[1])
                self.assertEqual(reqs[1]["sent"], slow - start_at, reqs[1])
            else:
                self.assertEqual(row.attempts, 1, row)
                self.assertEqual(len(reqs), 1, (key, reqs))
        self.assert_no_parts("jk")
        log = self.daemon.log_text()
        self.assertRegex(log, r"worker \d+ \(pid %d\) died \(signal 9\)"
                         % victim.pid)
        self.assertEqual(self.zombies(), [])

    @config(workers={"count": 2})
    def test_restart_storm_is_limited_and_recovers(self):
        """Children killed as fast as they appear: fetchd keeps running,
        restarts are held to a rate instead of spinning, and once the
        killing stops the pool is whole and works."""
        self.wait_workers(2)
        killed = set()
        start = time.monotonic()
        end = start + 3 * ft.SCALE
        # Until the limit engages (a slow build restarts children more
        # slowly, so it may take more than 30 kills), within bounds.
        while (len(killed) < 300 and time.monotonic() < end and
               (len(killed) < 30 or
                "restarts per second" not in self.daemon.log_text())):
            for w in self.workers():
                if w.ident not in killed:
                    os.kill(w.pid, signal.SIGKILL)
                    killed.add(w.ident)
            time.sleep(ft.POLL / 4)
        self.assertTrue(self.daemon.running(), self.daemon.log_tail())
        self.assertGreaterEqual(len(killed), 12)
        if "restarts per second" not in self.daemon.log_text():
            # The limit never had to engage: a slow build (sanitizers)
            # starts workers more slowly than it allows, and then the
            # restarts seen must fit it.
            self.assertLessEqual(len(killed), RESTART_BURST * (
                time.monotonic() - start + 1), self.daemon.log_tail())
        self.wait_workers(2, exclude=killed)
        self.drop_job("after", [self.url("after.bin", size=4321, seed=8)])
        state, rows = self.wait_done("after")
        self.assertEqual(state, "done")
        self.assert_file(os.path.join(self.job_dir("after"), "after.bin"),
                         body(4321, 8))

    @config(daemon={"shutdown_grace": 1})
    def test_sigterm_children_exit(self):
        """SIGTERM with a transfer in flight: exit 0, every child gone (not
        a zombie, not an orphan), the .part kept for resume."""
        ws = self.wait_workers(self.count())
        size = 300 * KIB
        u = self.url("t.bin", size=size, seed=5, drip=100 * KIB, key="kt")
        self.drop_job("jt", [u])
        part = os.path.join(self.job_dir("jt"), "t.bin.part")
        self.wait_file_size(part, 1)
        self.assertEqual(self.daemon.stop(timeout=1 + 5), 0,
                         self.daemon.log_tail())
        # fetchd waited for them itself: not even a zombie is left.
        for w in ws:
            self.assertTrue(gone(w.ident), "worker %r outlived fetchd: %r"
                            % (w, proc_stat(w.pid)))
        kept = os.stat(part).st_size
        self.assertGreater(kept, 0)
        self.assertLess(kept, size)
        self.daemon.start()
        state, rows = self.wait_done("jt", 30)
        self.assertEqual(state, "done")
        self.assert_file(os.path.join(self.job_dir("jt"), "t.bin"),
                         body(size, 5))

    def test_kill9_of_fetchd_takes_the_children(self):
        """fetchd killed with SIGKILL, a transfer in flight: the children
        die with it, none is left running. One child is stopped first
        (SIGSTOP), so it cannot notice its socket closing: only the
        parent-death signal can end it."""
        ws = self.wait_workers(self.count())
        u = self.url("k.bin", size=300 * KIB, seed=6, drip=100 * KIB,
                     key="kk")
        self.drop_job("jk9", [u])
        part = os.path.join(self.job_dir("jk9"), "k.bin.part")
        self.wait_file_size(part, 1)
        busy = ft.wait_for(lambda: self.worker_with_open(part), 10,
                           "the worker writing %s" % part)
        frozen = next(w for w in ws if w.ident != busy.ident)
        self.addCleanup(kill_if_alive, frozen.ident)
        os.kill(frozen.pid, signal.SIGSTOP)
        ft.wait_for(lambda: (proc_stat(frozen.pid) or frozen).state == "T",
                    10, "worker %d to stop" % frozen.pid)
        self.assertEqual(self.daemon.kill9(), -9)
        ft.wait_for(lambda: not any(alive(w.ident) for w in ws), 10,
                    "every worker to die with fetchd",
                    lambda: repr([proc_stat(w.pid) for w in ws]))

    @config(workers={"count": 2, "per_host": 8}, daemon={"log_level": "info"})
    def test_reload_count_change_drains_old_children(self):
        """SIGHUP with a new count: the old children finish what they run
        and exit, the new pool takes the rest; every URL is fetched once."""
        old = {w.ident for w in self.wait_workers(2)}
        specs = [("d%02d.bin" % i, 60 * KIB, i, "kd%02d" % i)
                 for i in range(8)]
        urls = [self.url(n, size=s, seed=seed, key=k, drip=60 * KIB)
                for n, s, seed, k in specs]
        self.drop_job("jr", urls)
        ft.wait_for(lambda: len(self.workers()) == 2 and all(
            self.worker_with_open(os.path.join(self.job_dir("jr"),
                                               n + ".part"))
            for n in ("d00.bin", "d01.bin")), 10, "two transfers running")
        self.daemon.settings["workers"]["count"] = 4
        self.daemon.write_config()
        os.kill(self.daemon.pid, signal.SIGHUP)
        state, rows = self.wait_done("jr", 40)
        self.assertEqual(state, "done")
        for row, (name, size, seed, key) in zip(rows, specs):
            self.assert_row(row, "ok", 200, size, 1, name)
            self.assert_file(os.path.join(self.job_dir("jr"), name),
                             body(size, seed))
            self.assertEqual(len(self.server.requests_for(key)), 1, key)
        ws = self.wait_workers(4)
        self.assertFalse({w.ident for w in ws} & old, ws)
        ft.wait_for(lambda: not any(alive(i) for i in old), 10,
                    "the old workers to exit")

    @config(workers={"model": "threads", "count": 3, "per_host": 8})
    def test_switch_threads_process_threads_under_load(self):
        """Live switches threads -> process -> threads while transfers run
        (the process engine forks while the threads engine's workers are
        busy): every URL is fetched exactly once, every file byte-exact,
        and the children leave when their engine is replaced."""
        specs = [("s%02d.bin" % i, 40 * KIB + i, i, "ks%02d" % i)
                 for i in range(24)]
        urls = [self.url(n, size=s, seed=seed, key=k, drip=80 * KIB)
                for n, s, seed, k in specs]
        self.drop_job("jsw", urls)

        def served(n):
            return sum(1 for _, _, _, k in specs
                       if self.server.requests_for(k)) >= n

        ft.wait_for(lambda: served(2), 10, "transfers under threads")
        self.assertEqual(self.workers(), [])
        self.daemon.settings["workers"]["model"] = "process"
        self.daemon.write_config()
        os.kill(self.daemon.pid, signal.SIGHUP)
        ws = self.wait_workers(3)
        ft.wait_for(lambda: served(10), 20, "transfers under process")
        self.daemon.settings["workers"]["model"] = "threads"
        self.daemon.write_config()
        os.kill(self.daemon.pid, signal.SIGHUP)
        state, rows = self.wait_done("jsw", 60)
        self.assertEqual(state, "done")
        for row, (name, size, seed, key) in zip(rows, specs):
            self.assert_row(row, "ok", 200, size, 1, name)
            self.assert_file(os.path.join(self.job_dir("jsw"), name),
                             body(size, seed))
            self.assertEqual(len(self.server.requests_for(key)), 1, key)
        ft.wait_for(lambda: not any(alive(w.ident) for w in ws), 10,
                    "the process engine's workers to exit")
        self.assertEqual(self.zombies(), [])


if __name__ == "__main__":
    ft.main()
