#!/usr/bin/env python3
"""
e2e_hooks.py: the hooks run when a job ends (on_job_done, on_job_done_url).

    FETCHD=src/fetchd python3 tests/e2e_hooks.py -v

Run once per engine (e2e-hooks-threads.tap, -event.tap, -process.tap: the
hooks' children must live beside each engine, the process engine's
workers above all, which are reaped on the same SIGCHLD).

Covered:
  - the program runs once per job with the job, its state and its result
    path as arguments and in the environment with the job's counts, for a
    done job, a failed job and an entry of new/ rejected into failed/;
  - a hook that exits 1 leaves its job in done/ and is logged;
  - a hook that never ends is killed at on_job_done_timeout with its whole
    process group (its background child too), and the next hook runs;
  - on_job_done_max = 2 holds while 6 hooks want to run (the hooks count
    themselves, under a lock);
  - the webhook reaches the server with the job's facts as JSON, is sent
    again after a 503, is given up at once on a 404, and after
    on_job_done_retries more attempts when every one times out;
  - a daemon killed (-9) while a hook runs runs it again at its next
    start, and the record is gone after;
  - records found at start: a job in done/ gets its hook, one whose job is
    gone is dropped, one whose job is still in active/ runs when that job
    ends.

Each hook is a small Python program the test writes; it appends one JSON
line per run to runs.log (under an flock, so concurrent runs do not mix).
"""

import json
import os
import shutil
import signal
import stat
import sys
import time

sys.path.insert(0, os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))

import fetchdtest as ft  # noqa: E402
from fetchdtest import FetchdTestCase, config, no_daemon, wait_for  # noqa: E402

# The hook: one JSON line per run in runs.log; then, by the job's name,
# hang, fail, or hold a slot for a while counting how many run at once.
HOOK = r'''#!%(python)s
import fcntl, json, os, subprocess, sys, time
d = %(dir)r
job = sys.argv[1] if len(sys.argv) > 1 else ""
env = {k: v for k, v in os.environ.items() if k.startswith("FETCHD_")}

def locked(f):
    with open(os.path.join(d, "lock"), "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        return f()

def log_run():
    with open(os.path.join(d, "runs.log"), "a") as f:
        f.write(json.dumps({"argv": sys.argv[1:], "env": env,
                            "pid": os.getpid(),
                            "pgid": os.getpgid(0)}) + "\n")
locked(log_run)
if job.startswith("hang") and not os.path.exists(os.path.join(d, "nohang")):
    child = subprocess.Popen(["sleep", "1000"])
    with open(os.path.join(d, "child.pid"), "w") as f:
        f.write("%%d\n" %% child.pid)
    time.sleep(1000)
if job.startswith("fail"):
    print("hook says no", file=sys.stderr)
    sys.exit(1)
if job.startswith("cap"):
    def count(delta):
        p = os.path.join(d, "count")
        n = int(open(p).read()) if os.path.exists(p) else 0
        n += delta
        open(p, "w").write("%%d" %% n)
        if delta > 0:
            with open(os.path.join(d, "peaks"), "a") as f:
                f.write("%%d\n" %% n)
    locked(lambda: count(1))
    time.sleep(0.5)
    locked(lambda: count(-1))
print("hook ran for", job)
'''


def read_text(path):
    """The stripped text of path, None while it does not exist."""
    try:
        with open(path) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        return None


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class HookCase(FetchdTestCase):
    """The hook program in the test's directory, and what it saw."""

    def hook_path(self):
        return os.path.join(self.tmp, "hook.py")

    def write_hook(self):
        with open(self.hook_path(), "w") as f:
            # a shebang needs a path: PYTHON3 may be a bare command name
            python = shutil.which(ft.PYTHON3) or sys.executable
            f.write(HOOK % {"python": python, "dir": self.tmp})
        os.chmod(self.hook_path(), stat.S_IRWXU)
        self.addCleanup(self.kill_leftovers)

    def kill_leftovers(self):
        """Hooks a kill -9 left running: killed by process group."""
        for r in self.runs():
            try:
                os.killpg(r["pgid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def runs(self, job=None):
        try:
            with open(os.path.join(self.tmp, "runs.log")) as f:
                rs = [json.loads(line) for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return []
        return [r for r in rs if job is None or r["argv"][:1] == [job]]

    def wait_runs(self, job, n, timeout=15):
        return wait_for(lambda: (lambda rs: rs if len(rs) >= n else None)(
            self.runs(job)), timeout, "%d run(s) of the hook for %s" % (n, job),
            self.daemon.log_tail)

    def records(self):
        try:
            return sorted(e for e in os.listdir(self.daemon.spool_path("hooks"))
                          if not e.startswith("."))
        except FileNotFoundError:
            return []

    def wait_no_records(self, timeout=15):
        wait_for(lambda: self.records() == [], timeout,
                 "spool/hooks to be empty",
                 lambda: "records: %s\n%s" % (self.records(),
                                              self.daemon.log_tail()))

    def wait_log(self, pattern, timeout=15):
        return wait_for(lambda: pattern in self.daemon.log_text(), timeout,
                        "%r in the log" % pattern, self.daemon.log_tail)

    def start_with(self, **daemon_settings):
        """Write the hook, add the settings to [daemon] and start."""
        self.write_hook()
        self.daemon.settings["daemon"].update(daemon_settings)
        self.daemon.write_config()
        self.daemon.start()


class TestProgram(HookCase):
    """on_job_done: arguments, environment, failures, limits, the cap."""

    @no_daemon
    def test_arguments_and_environment(self):
        self.start_with(on_job_done=self.hook_path())
        self.drop_job("ok", [self.url("a.bin", size=3000),
                             self.url("b.bin", size=100)])
        self.drop_job("bad", [self.url("c.bin", status=404)])
        self.wait_done("ok")
        self.wait_done("bad")
        for job, state, urls, done, failed, nbytes in (
                ("ok", "done", 2, 2, 0, 3100), ("bad", "failed", 1, 0, 1, 0)):
            run = self.wait_runs(job, 1)[0]
            result = self.daemon.spool_path(state, job + ".result")
            self.assertEqual(run["argv"], [job, state, result])
            env = run["env"]
            self.assertEqual(env["FETCHD_JOB"], job)
            self.assertEqual(env["FETCHD_STATE"], state)
            self.assertEqual(env["FETCHD_RESULT"], result)
            self.assertEqual((env["FETCHD_URLS"], env["FETCHD_DONE"],
                              env["FETCHD_FAILED"], env["FETCHD_BYTES"]),
                             (str(urls), str(done), str(failed), str(nbytes)))
            self.assertLess(abs(float(env["FETCHD_TIME"]) - time.time()), 60)
            self.assertTrue(os.path.isabs(result) and os.path.exists(result))
            # its own process group: the time limit kills all of it
            self.assertEqual(run["pgid"], run["pid"])
        self.wait_no_records()
        self.wait_log("hook ok: hook ran for ok")
        self.assertEqual(len(self.runs()), 2, "one run per job")

    @no_daemon
    def test_rejected_entry(self):
        self.start_with(on_job_done=self.hook_path())
        os.symlink("/etc/passwd", self.daemon.spool_path("new", "link"))
        run = self.wait_runs("link", 1)[0]
        self.assertEqual(run["argv"][1], "failed")
        self.assertTrue(os.path.exists(run["argv"][2]))
        self.assertNotIn("FETCHD_URLS", run["env"])
        self.wait_no_records()

    @no_daemon
    def test_failing_hook(self):
        self.start_with(on_job_done=self.hook_path())
        self.drop_job("fail1", [self.url("a.bin")])
        state, rows = self.wait_done("fail1")
        self.wait_runs("fail1", 1)
        self.wait_log("hook fail1: exited with status 1")
        self.wait_log("hook fail1 (stderr): hook says no")
        self.wait_no_records()
        self.assertEqual(state, "done")
        self.assertEqual(self.daemon.finished("fail1")[0], "done")

    @no_daemon
    def test_hanging_hook_is_killed(self):
        # long enough for the hook (a Python program) to start on a
        # loaded machine and say so before its limit
        self.start_with(on_job_done=self.hook_path(),
                        on_job_done_timeout=max(3, int(3 * ft.SCALE)),
                        on_job_done_max=1)
        self.drop_job("hang1", [self.url("a.bin")])
        run = self.wait_runs("hang1", 1)[0]
        child = int(wait_for(lambda: read_text(
            os.path.join(self.tmp, "child.pid")), 10, "child.pid"))
        self.drop_job("next", [self.url("b.bin")])
        self.wait_log("hook hang1: killed at its time limit")
        # the whole group: the hook and the child it started
        wait_for(lambda: not alive(run["pid"]) and not alive(child), 10,
                 "the hook and its child to be gone")
        self.wait_runs("next", 1)
        self.wait_no_records()
        self.assertEqual(self.daemon.finished("hang1")[0], "done")

    @no_daemon
    def test_cap(self):
        n = 6
        for sub in ("tmp", "new"):
            os.makedirs(self.daemon.spool_path(sub), exist_ok=True)
        for i in range(n):
            self.drop_job("cap%d" % i, [self.url("a%d.bin" % i)])
        self.start_with(on_job_done=self.hook_path(), on_job_done_max=2)
        for i in range(n):
            self.wait_runs("cap%d" % i, 1, timeout=20)
        self.wait_no_records(timeout=20)
        with open(os.path.join(self.tmp, "peaks")) as f:
            peaks = [int(x) for x in f.read().split()]
        self.assertEqual(len(peaks), n)
        self.assertLessEqual(max(peaks), 2, "more than 2 hooks at once")
        self.assertEqual(max(peaks), 2, "the cap was never reached")
        self.assertEqual(len(self.runs()), n)


class TestWebhook(HookCase):
    """on_job_done_url: JSON, retry after 503, give up on 404."""

    def post_bodies(self, key):
        return [r for r in self.server.requests_for(key)
                if r["method"] == "POST"]

    @no_daemon
    def test_post_retried_after_503(self):
        url = self.server.url("/hook/x", status="503,200")
        self.start_with(on_job_done_url=url.replace(
            "http://", "http://user:secret@"))
        self.drop_job("w1", [self.url("a.bin", size=500)])
        self.wait_done("w1")
        reqs = self.server.wait_requests("/hook/x", 2)
        self.assertEqual([r["status"] for r in reqs], [503, 200])
        for r in reqs:
            self.assertEqual(r["ctype"], "application/json")
            facts = json.loads(r["body"])
            self.assertEqual(
                {k: facts[k] for k in ("job", "state", "result", "urls",
                                       "done", "failed", "bytes")},
                {"job": "w1", "state": "done",
                 "result": self.daemon.spool_path("done", "w1.result"),
                 "urls": 1, "done": 1, "failed": 0, "bytes": 500})
            self.assertLess(abs(facts["time"] - time.time()), 60)
        self.wait_log("webhook w1: delivered (attempt 2")
        self.wait_no_records()
        self.assertNotIn("secret", self.daemon.log_text())
        self.assertEqual(len(self.server.requests_for("/hook/x")), 2)

    @no_daemon
    def test_post_given_up_on_404(self):
        self.start_with(on_job_done_url=self.server.url("/hook/y",
                                                        status="404"),
                        on_job_done_retries=3)
        self.drop_job("w2", [self.url("a.bin")])
        self.wait_log("webhook w2: given up after 1 attempt")
        self.wait_no_records()
        self.assertEqual(len(self.server.requests_for("/hook/y")), 1)
        self.assertEqual(self.daemon.finished("w2")[0], "done")


    @no_daemon
    def test_post_timeouts_are_bounded(self):
        self.start_with(on_job_done_url=self.server.url("/hook/z",
                                                        delay=4000),
                        on_job_done_timeout=1, on_job_done_retries=1)
        self.drop_job("w3", [self.url("a.bin")])
        self.wait_log("webhook w3: attempt 1 failed")
        self.wait_log("webhook w3: given up after 2 attempts")
        self.wait_no_records()
        # logged by the server when its answers end, 4 s after each came
        self.server.wait_requests("/hook/z", 2)
        self.assertEqual(len(self.server.requests_for("/hook/z")), 2)


class TestRestart(HookCase):
    """Records: a hook interrupted by kill -9, records found at start."""

    @no_daemon
    def test_kill9_while_hook_runs(self):
        self.start_with(on_job_done=self.hook_path())
        self.drop_job("hang2", [self.url("a.bin")])
        first = self.wait_runs("hang2", 1)[0]
        self.assertEqual(self.records(), ["hang2"])
        self.daemon.kill9()
        os.killpg(first["pgid"], signal.SIGKILL)
        open(os.path.join(self.tmp, "nohang"), "w").close()
        self.daemon.start()
        self.wait_runs("hang2", 2)
        self.wait_no_records()
        self.wait_log("hook hang2: exited with status 0")
        self.assertEqual(len(self.runs("hang2")), 2)

    @no_daemon
    def test_records_found_at_start(self):
        self.write_hook()
        sp = self.daemon.spool_path
        for sub in ("done", "failed", "hooks", "active"):
            os.makedirs(sp(sub), exist_ok=True)
        with open(sp("done", "old"), "w") as f:
            f.write(self.url("a.bin") + "\n")
        with open(sp("done", "old.result"), "w") as f:
            f.write("#url\toutcome\thttp_status\tbytes\tseconds\tattempts"
                    "\tpath\terror\n")
        self.jobs.add("act")
        with open(sp("active", "act"), "w") as f:
            f.write(self.url("b.bin") + "\n")
        record = ("state done\ntime 1700000000.000\nowed program\n"
                  "urls 1\ndone 1\nfailed 0\nbytes 1024\n")
        for job in ("old", "gone", "act"):
            with open(sp("hooks", job), "w") as f:
                f.write(record)
        self.daemon.settings["daemon"]["on_job_done"] = self.hook_path()
        self.daemon.write_config()
        self.daemon.start()
        old = self.wait_runs("old", 1)[0]
        self.assertEqual(old["env"]["FETCHD_TIME"], "1700000000.000")
        self.assertEqual(old["env"]["FETCHD_BYTES"], "1024")
        self.wait_log("hook gone: the job is in none of")
        self.wait_done("act")
        act = self.wait_runs("act", 1)[0]
        self.assertEqual(act["argv"][1], "done")
        self.wait_no_records()
        self.assertEqual(self.runs("gone"), [])
        self.assertEqual(len(self.runs()), 2)


if __name__ == "__main__":
    ft.main()
