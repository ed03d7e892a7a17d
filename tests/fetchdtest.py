"""
fetchdtest.py: the harness the end-to-end tests drive fetchd with.

Each test gets a fresh directory (spool, download directory, control socket,
config, logs), a tests/httpd.py server on 127.0.0.1 and a fetchd started on
a config written there. Everything is waited for with a deadline, polling
every POLL seconds; nothing sleeps in the hope that something happened.
Every process started here is stopped by pid in the test's cleanup, and
killed at exit (also on SIGTERM) should a test not get that far.

Environment:
    FETCHD          the fetchd binary (tests are skipped when unset)
    FETCHCTL        the fetchctl binary (optional)
    PYTHON3         python used to run httpd.py (default: this one)
    TESTS_SRCDIR    directory holding httpd.py (default: this file's)
    FETCHD_MODEL    [workers] model written to the config (default threads)
    FETCHD_E2E_TIMEOUT_SCALE  multiply every deadline (slow hosts, valgrind)
    FETCHD_E2E_KEEP set: keep the directories of failed tests
"""

import atexit
import json
import os
import re
import resource
import shutil
import socket
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

TESTS_SRCDIR = (os.environ.get("TESTS_SRCDIR")
                or os.path.dirname(os.path.abspath(__file__)))
if TESTS_SRCDIR not in sys.path:
    sys.path.insert(0, TESTS_SRCDIR)

from httpd import body  # noqa: E402  (re-exported for the tests)
from resultfile import Row, read_result  # noqa: E402,F401

FETCHD = os.environ.get("FETCHD") or None
FETCHCTL = os.environ.get("FETCHCTL") or None
PYTHON3 = os.environ.get("PYTHON3") or sys.executable
MODEL = os.environ.get("FETCHD_MODEL") or "threads"
SCALE = float(os.environ.get("FETCHD_E2E_TIMEOUT_SCALE") or "1")
KEEP = bool(os.environ.get("FETCHD_E2E_KEEP"))
POLL = 0.02

SPOOL_DIRS = ("tmp", "new", "active", "done", "failed")

__all__ = ["body", "FetchdTestCase", "Server", "Daemon", "config", "main",
           "no_daemon", "parse_result", "still_for", "wait_for",
           "config_text",
           "FETCHD", "FETCHCTL", "MODEL", "SCALE"]


# -- processes we own ----------------------------------------------------

_live = {}          # pid -> Popen, every process started and not yet reaped
_tmpdirs = set()    # directories to remove should the run be cut short


def _register(proc):
    _live[proc.pid] = proc


def _reaped(proc):
    _live.pop(proc.pid, None)


def _kill_all():
    for proc in list(_live.values()):
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _reaped(proc)
    if not KEEP:
        for d in list(_tmpdirs):
            shutil.rmtree(d, ignore_errors=True)
            _tmpdirs.discard(d)


def _on_sigterm(signum, frame):
    _kill_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


atexit.register(_kill_all)
if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_sigterm)


# -- waiting ---------------------------------------------------------------

def free_port():
    """A port of 127.0.0.1 free now, for a listener a test starts next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, detail=None):
    """
    Call pred() every POLL seconds until it returns something true, and
    return that. After timeout seconds (times SCALE) raise AssertionError
    naming what was awaited, with detail() appended when given.
    """
    end = time.monotonic() + timeout * SCALE
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            msg = "timed out after %.1f s waiting for %s" % (
                timeout * SCALE, what)
            if detail is not None:
                msg += "\n" + detail()
            raise AssertionError(msg)
        time.sleep(POLL)


def still_for(pred, seconds):
    """pred() holds on every poll for seconds (times SCALE): a bounded
    observation window for something that must NOT happen. Returns True,
    or False at the first poll where it does not hold."""
    end = time.monotonic() + seconds * SCALE
    while time.monotonic() < end:
        if not pred():
            return False
        time.sleep(POLL)
    return pred()


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "(%s: %s)" % (path, e.strerror)
    text = data.decode("utf-8", "replace").splitlines()
    return "\n".join("    " + s for s in text[-lines:])


# -- the HTTP server -------------------------------------------------------

class Server:
    """tests/httpd.py on 127.0.0.1, an ephemeral port, its log in dirpath."""

    def __init__(self, dirpath):
        self.dir = dirpath
        self.port_file = os.path.join(dirpath, "httpd.port")
        self.log_path = os.path.join(dirpath, "httpd.log")
        self.err_path = os.path.join(dirpath, "httpd.err")
        self.pid_path = os.path.join(dirpath, "httpd.pid")
        self.proc = None
        self.port = None
        self.base = None

    def start(self, timeout=10):
        with open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(
                [PYTHON3, os.path.join(TESTS_SRCDIR, "httpd.py"),
                 "--port-file", self.port_file, "--log", self.log_path],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                close_fds=True)
        _register(self.proc)
        with open(self.pid_path, "w") as f:
            f.write("%d\n" % self.proc.pid)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("httpd.py exited with %s:\n%s" % (
                    self.proc.returncode, _tail(self.err_path)))
            return os.path.exists(self.port_file)
        wait_for(up, timeout, "httpd.py to listen",
                 lambda: _tail(self.err_path))
        with open(self.port_file) as f:
            self.port = int(f.read().strip())
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self, timeout=10):
        """SIGTERM, wait; SIGKILL after timeout. Returns the exit status."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout * SCALE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _reaped(proc)
        return proc.returncode

    def url(self, path, **params):
        """
        URL of path on this server ("a.bin" means "/f/a.bin") with params
        as the query, in the order given; list values are joined with ",".
        Values are percent-encoded except ",".
        """
        if not path.startswith("/"):
            path = "/f/" + path
        parts = []
        for k, v in params.items():
            if isinstance(v, (list, tuple)):
                v = ",".join(str(x) for x in v)
            parts.append("%s=%s" % (k, urllib.parse.quote(str(v), safe=",")))
        u = self.base + path
        if parts:
            u += "?" + "&".join(parts)
        return u

    def log(self):
        """Every request logged so far (complete lines only), in order."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n")[:-1]:
            if line.strip():
                out.append(json.loads(line))
        return out

    def requests_for(self, key):
        """Logged requests whose counter key or path is key, in the order
        they arrived (the log is written as responses end)."""
        rs = [r for r in self.log() if r["key"] == key or r["path"] == key]
        return sorted(rs, key=lambda r: r["time"])

    def wait_requests(self, key, count, timeout=10):
        """Wait until at least count requests for key are logged."""
        return wait_for(
            lambda: (lambda rs: rs if len(rs) >= count else None)(
                self.requests_for(key)),
            timeout, "%d request(s) for %s in the server log" % (count, key),
            lambda: "server log:\n" + _tail(self.log_path))

    def get(self, path, timeout=5):
        """GET path directly (not through fetchd): (status, body bytes)."""
        with urllib.request.urlopen(self.base + path,
                                    timeout=timeout * SCALE) as r:
            return r.status, r.read()

    def reset_counters(self):
        self.get("/reset-counters")

    def concurrency(self, reset=False):
        """(requests being served now, the most at once so far); reset
        starts the maximum again from now."""
        st, data = self.get("/concurrency" + ("?reset=1" if reset else ""))
        c = json.loads(data)
        return c["now"], c["max"]


# -- fetchd ------------------------------------------------------------------

def config_text(settings):
    """
    INI text for settings ({section: {key: value}}, in order; None values
    are left out). Returns (text, lines) where lines[(section, key)] is the
    1-based line number of that key.
    """
    out = ["# fetchd.conf written by fetchdtest.py"]
    lines = {}
    for section, keys in settings.items():
        out.append("")
        out.append("[%s]" % section)
        for k, v in keys.items():
            if v is None:
                continue
            out.append("%s = %s" % (k, v))
            lines[(section, k)] = len(out)
    return "\n".join(out) + "\n", lines


def merge_settings(base, *overrides):
    """base updated by each override, section by section (copies)."""
    res = {s: dict(kv) for s, kv in base.items()}
    for o in overrides:
        for s, kv in (o or {}).items():
            res.setdefault(s, {}).update(kv)
    return res


class Daemon:
    """fetchd on a config in dirpath; its stdout and stderr in fetchd.log."""

    def __init__(self, dirpath, overrides=None):
        self.dir = dirpath
        self.spool = os.path.join(dirpath, "spool")
        self.dl = os.path.join(dirpath, "dl")
        self.socket = os.path.join(dirpath, "fetchd.sock")
        self.conf = os.path.join(dirpath, "fetchd.conf")
        self.log_path = os.path.join(dirpath, "fetchd.log")
        self.pid_path = os.path.join(dirpath, "fetchd.pid")
        self.proc = None
        self.wrapper = []       # a command to run fetchd under (strace)
        self.env = {}           # added to fetchd's environment (LD_PRELOAD)
        self.rlimit_nofile = None   # RLIMIT_NOFILE (soft and hard) to run at
        self.settings = merge_settings(self.defaults(), overrides)
        self.write_config()

    def defaults(self):
        return {
            "daemon": {
                "spool_dir": self.spool,
                "download_dir": self.dl,
                "socket": self.socket,
                "log_level": "debug",
            },
            "workers": {
                "model": MODEL,
            },
            "http": {
                "connect_timeout": 5,
                "retry_delay": 0,
                "retry_max_delay": 1,
            },
        }

    def write_config(self, path=None, settings=None):
        """Write settings (default: ours) to path (default: self.conf).
        Returns {(section, key): line number}."""
        text, lines = config_text(settings or self.settings)
        with open(path or self.conf, "w") as f:
            f.write(text)
        return lines

    def setting(self, section, key, default=None):
        return self.settings.get(section, {}).get(key, default)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self, offset=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        return _tail(self.log_path, lines)

    def start(self, timeout=10):
        """Start fetchd and wait until this run logged "ready"."""
        offset = self.launch()
        self.wait_ready(offset, timeout)

    def launch(self):
        """Start fetchd without waiting for it; returns the log offset
        of this run, for wait_ready()."""
        assert not self.running(), "fetchd already running"
        try:
            offset = os.path.getsize(self.log_path)
        except FileNotFoundError:
            offset = 0
        env = None
        if self.env:
            env = dict(os.environ)
            env.update(self.env)
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                self.wrapper + [FETCHD, "-c", self.conf],
                stdin=subprocess.DEVNULL,
                stdout=logf, stderr=logf, close_fds=True, env=env,
                preexec_fn=self._limits if self.rlimit_nofile else None)
        _register(self.proc)
        with open(self.pid_path, "w") as f:
            f.write("%d\n" % self.proc.pid)
        return offset

    def _limits(self):
        """In the child before exec: the open file limit asked for."""
        n = self.rlimit_nofile
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    def wait_ready(self, offset=0, timeout=10):
        """Wait until the run whose log starts at offset logged "ready"."""
        ready = re.compile(r"\bready\b")

        def up():
            if ready.search(self.log_text(offset)):
                return True
            if self.proc.poll() is not None:
                raise AssertionError("fetchd exited with %s before ready:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            return False
        wait_for(up, timeout, "fetchd to log ready", self.log_tail)

    def _reap(self):
        proc, self.proc = self.proc, None
        _reaped(proc)
        return proc.returncode

    def stop(self, timeout=None):
        """
        SIGTERM and wait (default: shutdown_grace + 5 s). Returns the exit
        status (negative: killed by that signal). A daemon still running at
        the deadline is killed and AssertionError raised.
        """
        if self.proc is None:
            return None
        if timeout is None:
            timeout = int(self.setting("daemon", "shutdown_grace", 30)) + 5
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout * SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._reap()
                raise AssertionError(
                    "fetchd did not exit within %.1f s of SIGTERM:\n%s"
                    % (timeout * SCALE, self.log_tail()))
        return self._reap()

    def kill9(self):
        """SIGKILL and reap. Returns the exit status (-9)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        return self._reap()

    def restart(self, timeout=10):
        if self.running():
            self.stop()
        self.start(timeout)

    # -- the spool ---------------------------------------------------------

    def spool_path(self, sub, name=""):
        return os.path.join(self.spool, sub, name)

    def drop_job(self, name, text):
        """
        Write a job into spool/tmp/name and rename it to spool/new/name.
        text is a string or a list of lines. Returns time.time() taken just
        before the rename.
        """
        if isinstance(text, (list, tuple)):
            text = "".join(line + "\n" for line in text)
        tmp = self.spool_path("tmp", name)
        with open(tmp, "w") as f:
            f.write(text)
        t = time.time()
        os.rename(tmp, self.spool_path("new", name))
        return t

    def spool_entries(self, name):
        """[(subdir, entry)] for entries named name or name.* in the spool."""
        out = []
        for sub in SPOOL_DIRS:
            try:
                ents = os.listdir(self.spool_path(sub))
            except FileNotFoundError:
                continue
            for e in sorted(ents):
                if e == name or e.startswith(name + "."):
                    out.append((sub, e))
        return out

    def spool_listing(self):
        out = []
        for sub in SPOOL_DIRS:
            try:
                ents = sorted(os.listdir(self.spool_path(sub)))
            except FileNotFoundError:
                ents = ["(missing)"]
            out.append("  %s/: %s" % (sub, " ".join(ents)))
        return "\n".join(out)

    def finished(self, name):
        """("done"|"failed", result path) once the job and its result are
        both there, else None."""
        for state in ("done", "failed"):
            job = self.spool_path(state, name)
            res = job + ".result"
            if os.path.lexists(job) and os.path.exists(res):
                return state, res
        return None

    def wait_done(self, name, timeout=20):
        """Wait for the job to finish; returns (state, rows)."""
        def check():
            f = self.finished(name)
            if f:
                return f
            if not self.running():
                raise AssertionError(
                    "fetchd is not running (status %s) while waiting for job "
                    "%s:\n%s" % (self.proc.returncode if self.proc else None,
                                 name, self.log_tail()))
            return None
        state, res = wait_for(
            check, timeout, "job %s to finish" % name,
            lambda: "spool:\n%s\nfetchd log:\n%s" % (self.spool_listing(),
                                                     self.log_tail()))
        return state, parse_result(res)


# -- results -----------------------------------------------------------------

def parse_result(path):
    """Rows of a result file (resultfile.read_result); a malformed header
    fails the test."""
    try:
        return read_result(path)
    except ValueError as e:
        raise AssertionError(str(e))


# -- the test case base ------------------------------------------------------

def config(**sections):
    """Decorator: config overrides for one test, e.g.
    @config(http={"retries": 2}, workers={"count": 1})."""
    def deco(f):
        f.fetchd_config = sections
        return f
    return deco


def no_daemon(f):
    """Decorator: do not start fetchd before the test (it is configured)."""
    f.fetchd_start = False
    return f


class FetchdTestCase(unittest.TestCase):
    """
    Per test: self.tmp (fresh directory), self.server (running),
    self.daemon (configured, running unless @no_daemon). Class attribute
    `settings` holds overrides for every test of the class, @config adds
    per-test ones. Cleanup stops fetchd (expecting exit status 0 when the
    test passed), stops the server and removes the directory.
    """

    settings = {}

    def setUp(self):
        if not FETCHD:
            raise unittest.SkipTest("FETCHD is not set")
        if not os.access(FETCHD, os.X_OK):
            self.fail("FETCHD=%s is not an executable" % FETCHD)
        self.tmp = tempfile.mkdtemp(prefix="fetchd-e2e-")
        _tmpdirs.add(self.tmp)
        self.addCleanup(self._cleanup)
        self.jobs = set()
        self.server = Server(self.tmp)
        self.server.start()
        method = getattr(self, self._testMethodName)
        self.daemon = Daemon(self.tmp, merge_settings(
            self.settings, getattr(method, "fetchd_config", None)))
        os.mkdir(self.daemon.dl)
        if getattr(method, "fetchd_start", True):
            self.daemon.start()

    def tearDown(self):
        if self.daemon.running() and not self._failed():
            rc = self.daemon.stop()
            self.assertEqual(rc, 0, "fetchd exit status after SIGTERM:\n%s"
                             % self.daemon.log_tail())
        if not self._failed():
            self.assert_dl_clean()

    def _failed(self):
        """True once this test has a failure or an error recorded (the
        outcome's own flag is reset for each part of the test)."""
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        result = getattr(outcome, "result", None)
        recorded = (list(getattr(result, "failures", [])) +
                    list(getattr(result, "errors", [])))
        if any(t is self for t, _ in recorded):
            return True
        for t, exc in getattr(outcome, "errors", None) or []:
            if exc is not None:
                return True
        return not getattr(outcome, "success", True)

    def _cleanup(self):
        failed = self._failed()
        if failed:
            sys.stderr.write(
                "\n--- %s: fetchd log (tail) ---\n%s\n--- httpd log (tail) ---"
                "\n%s\n--- spool ---\n%s\n" % (
                    self.id(), self.daemon.log_tail(60),
                    _tail(self.server.log_path, 20),
                    self.daemon.spool_listing()))
        try:
            if self.daemon.running():
                try:
                    self.daemon.stop(timeout=3 if failed else 10)
                except AssertionError:
                    pass
            self.daemon.kill9()
        finally:
            self.server.stop()
            if failed and KEEP:
                sys.stderr.write("kept %s\n" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
            _tmpdirs.discard(self.tmp)

    # -- shortcuts -----------------------------------------------------------

    def url(self, path, **params):
        return self.server.url(path, **params)

    def drop_job(self, name, text):
        self.jobs.add(name)
        return self.daemon.drop_job(name, text)

    def wait_done(self, name, timeout=20):
        return self.daemon.wait_done(name, timeout)

    def job_dir(self, name):
        return os.path.join(self.daemon.dl, name)

    def job_files(self, name):
        """Relative paths of every non-directory under download_dir/name."""
        top = self.job_dir(name)
        out = set()
        for dirpath, dirnames, filenames in os.walk(top):
            for fn in filenames:
                out.add(os.path.relpath(os.path.join(dirpath, fn), top))
            for dn in dirnames:
                if os.path.islink(os.path.join(dirpath, dn)):
                    out.add(os.path.relpath(os.path.join(dirpath, dn), top))
        return out

    def wait_file_size(self, path, minimum=1, timeout=10):
        """Wait until path holds at least minimum bytes; returns its size."""
        def size():
            try:
                n = os.stat(path).st_size
            except FileNotFoundError:
                return None
            return n if n >= minimum else None
        return wait_for(size, timeout, "%s to hold %d byte(s)" % (path, minimum),
                        self.daemon.log_tail)

    # -- assertions ----------------------------------------------------------

    def assert_file(self, path, expected):
        """path is a regular file (not a symlink) holding exactly expected."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.fail("%s does not exist" % path)
        self.assertTrue(stat.S_ISREG(st.st_mode),
                        "%s is not a regular file" % path)
        with open(path, "rb") as f:
            data = f.read()
        if data != expected:
            first = next((i for i in range(min(len(data), len(expected)))
                          if data[i] != expected[i]),
                         min(len(data), len(expected)))
            self.fail("%s: %d bytes, expected %d; first difference at byte %d"
                      % (path, len(data), len(expected), first))

    def assert_row(self, row, outcome, status=None, nbytes=None,
                   attempts=None, path=None):
        what = repr(row)
        self.assertEqual(row.outcome, outcome, what)
        if status is not None:
            self.assertEqual(row.status, status, what)
        if nbytes is not None:
            self.assertEqual(row.bytes, nbytes, what)
        if attempts is not None:
            self.assertEqual(row.attempts, attempts, what)
        if path is not None:
            self.assertEqual(row.path, path, what)
        if outcome in ("ok", "unchanged"):
            self.assertEqual(row.error_text, "", what)
            self.assertIsNotNone(row.seconds, what)
            self.assertGreaterEqual(row.seconds, 0, what)
        else:
            self.assertNotEqual(row.error_text, "",
                                "failed row without an error: " + what)

    def assert_no_parts(self, name):
        parts = [p for p in self.job_files(name) if p.endswith(".part")]
        self.assertEqual(parts, [], "leftover .part files in job %s" % name)

    def assert_dl_clean(self):
        """download_dir holds nothing but the directories of dropped jobs."""
        try:
            ents = os.listdir(self.daemon.dl)
        except FileNotFoundError:
            return
        for e in ents:
            p = os.path.join(self.daemon.dl, e)
            self.assertIn(e, self.jobs, "unexpected %s in download_dir" % p)
            self.assertFalse(os.path.islink(p), "%s is a symlink" % p)
            self.assertTrue(os.path.isdir(p), "%s is not a directory" % p)


# -- running a suite --------------------------------------------------------

class _TapResult(unittest.TextTestResult):
    """
    One TAP line per test on stdout, for automake's tap-driver.sh: a skipped
    test is counted as skipped and a failed one as failed, not hidden in a
    PASS of the whole file. Tracebacks and the daemon's log go to stderr,
    which the driver keeps in the test's log.
    """

    def __init__(self, total):
        super().__init__(unittest.runner._WritelnDecorator(sys.stderr),
                         True, 2)
        self.n = 0
        print("1..%d" % total, flush=True)

    def _tap(self, ok, test, directive=""):
        self.n += 1
        print("%s %d - %s%s" % ("ok" if ok else "not ok", self.n, test.id(),
                                directive), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._tap(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._tap(False, test)

    def addError(self, test, err):
        super().addError(test, err)
        # Also an error outside any test (setUpClass): the plan then no
        # longer matches, which the driver reports as an error too.
        self._tap(False, test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._tap(True, test, " # SKIP " + " ".join(reason.split()))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._tap(True, test, " # TODO expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._tap(False, test, " # TODO unexpected success")


def main():
    """
    Run the calling module's tests. With FETCHD_TAP set (the test harness
    sets it), report in TAP; otherwise as unittest.main() does, so a suite
    can still be run by hand with -v or with test names.
    """
    if not os.environ.get("FETCHD_TAP"):
        unittest.main(module="__main__")
        return
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules["__main__"])
    result = _TapResult(suite.countTestCases())
    suite.run(result)
    result.printErrors()
    sys.exit(0)
