#!/usr/bin/env python3
"""
httpd.py: the HTTP server the end-to-end tests run fetchd against.

It serves generated bodies under /f/ and misbehaves on request, driven by the
query string, so a test states the server's behaviour in the URL it puts in a
job and then reads the JSON request log to see what fetchd actually did.

    python3 httpd.py --port-file FILE --log FILE [--port N] [--bind 127.0.0.1]

The port is written to FILE (through FILE.tmp and a rename) once the socket
listens. SIGTERM or SIGINT stops the server and it exits with status 0.

Resources: any path under /f/. Query parameters:

    size=N        body length (default 1024)
    seed=S,T      body byte i is (i * 7 + S) % 251 (default 0), see body();
                  the n-th request for the key gets the n-th seed (the
                  last one repeats): a resource that changes
    key=K         counter key (default: path + "?" + query)
    status=A,B,C  the n-th request for the key gets the n-th status, the last
                  one repeats (default 200); responses that are neither 2xx
                  nor 3xx carry the body "status N\\n"
    retry_after=S "Retry-After: S" on 429 and 503
    delay=MS      sleep before the status line, every request
    range=0|1     honour "Range: bytes=N-", "bytes=N-M" and "bytes=-N"
                  (default 1); a start at or past the end gets 416 with
                  "Content-Range: bytes */size"; range=0 always sends 200
    truncate=N    first `faults` requests of the key: full Content-Length,
                  N body bytes, then an orderly close
    reset=N       first `faults` requests of the key: N body bytes (waiting
                  until the peer acknowledged them), then a reset
                  (SO_LINGER 0); truncate wins when both are given
    faults=K      requests hit by truncate/reset (default 1)
    cr_shift=N    with cr_on=K: the K-th request for the key, if it asks for
                  a range, gets the range starting N bytes later than asked
                  (body and Content-Range agree, the complete length is
                  "*": a server that sends another range than requested)
    drip=BPS      body at about BPS bytes/s in chunks of max(1, BPS // 20)
    redirect=URL  302 with "Location: URL" (when status is a 3xx, that code)
    hang=1        read the request, answer nothing until the client leaves
    ctype=T       Content-Type (default application/octet-stream)
    etag=A,B,C    the n-th request for the key gets ETag "A", "B", ... (the
                  last one repeats); weak=1 sends them weak (W/"A")
    lastmod=T,U   the n-th request's Last-Modified: epoch seconds T, U, ...
                  as an HTTP date (the last one repeats)

A GET or HEAD whose If-None-Match names the response's ETag (weak
comparison, or "*") gets a 304 with the validators and no body; without
If-None-Match, an If-Modified-Since not older than the Last-Modified date
gets the same (RFC 9110, 13.2.2). Only a response that would be a 200 is
conditional.

A request with Range and If-Range gets its range only when If-Range is the
response's strong ETag or its Last-Modified date, exactly; otherwise the
whole body with a 200 (RFC 9110, 13.1.5). The log's "if_range" member is
the If-Range header received, or null.

A redirect= applies when the status for the request is 2xx or 3xx, so
"status=503,200&redirect=..." redirects on the second request. Statuses must
be 200..599. HEAD sends the headers only. GET /ping answers "pong", GET
/reset-counters clears the counters, any other path gets 404.

POST to any path under /hook/ is a webhook receiver: the request body
(at most 64 KiB, by Content-Length) is logged with the request as "body"
(text) and "ctype" (its Content-Type), and the answer is the status=A,B,C
of the n-th POST for the key as above (default 200) with the body
"status N\n"; delay=MS applies too. Any other POST gets 404.

GET /concurrency answers {"now": N, "max": M}: requests for /f/ being
served now (from the request line read to the response's end, delay
included) and the most there were at once; /concurrency?reset=1 answers the
same and then starts the maximum again from the present count.

Every request becomes one JSON line in the log, written when the response
ended (finished or aborted), flushed at once:

    {"time": arrival (time.time() when the request was read), "method",
     "path", "query", "key", "range": Range header or null, "status": status
     sent (0: none, as with hang=1), "sent": body bytes handed to the
     kernel, "n": 1-based count of requests for this key, "headers": every
     request header as [name, value] in the order received, "peer": the
     client's [address, port]}

Tests import body() from here to know the bytes a URL serves.
"""

import argparse
import email.utils
import fcntl
import functools
import io
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PERIOD = 251
CHUNK = 64 * 1024
SIOCOUTQ = 0x5411           # TIOCOUTQ: bytes in the send queue not yet acked
RESET_DRAIN_SECONDS = 5.0   # longest wait for the peer to ack before a reset


@functools.lru_cache(maxsize=None)
def _pattern(seed):
    return bytes((i * 7 + seed) % PERIOD for i in range(PERIOD))


def body_slice(seed, offset, length):
    """Bytes offset .. offset+length-1 of the body for seed."""
    if length <= 0:
        return b""
    p = _pattern(seed % PERIOD)
    k = offset % PERIOD
    rot = p[k:] + p[:k]
    reps = length // PERIOD + 1
    return (rot * reps)[:length]


def body(size, seed=0):
    """The body served for size=size&seed=seed."""
    return body_slice(seed, 0, size)


class BadRequest(Exception):
    pass


def _int(params, name, default, lo=None):
    v = params.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v, 10)
    except ValueError:
        raise BadRequest("%s: not an integer" % name)
    if lo is not None and n < lo:
        raise BadRequest("%s: below %d" % (name, lo))
    return n


def parse_range(header, size):
    """
    (start, end) with end exclusive for a satisfiable single range, "unsat"
    for an unsatisfiable one, None when the header is absent, malformed or
    asks for several ranges (then the full body is sent).
    """
    if header is None:
        return None
    h = header.strip()
    if not h.lower().startswith("bytes="):
        return None
    spec = h[6:].strip()
    if "," in spec or "-" not in spec:
        return None
    first, last = (s.strip() for s in spec.split("-", 1))
    try:
        if first == "":
            if not last.isdigit():
                return None
            n = int(last)
            if n == 0 or size == 0:
                return "unsat"
            return (max(0, size - n), size)
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if last and end <= start:
        return None
    if start >= size:
        return "unsat"
    return (start, min(end, size))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fetchd-test-httpd/1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    def do_POST(self):
        self._serve(head=False)

    # -- output helpers ---------------------------------------------------

    def _send(self, data):
        """Send data on the socket, counting what the kernel took."""
        view = memoryview(data)
        while len(view):
            k = self.connection.send(view)
            self.rec["sent"] += k
            view = view[k:]

    def _start(self, code, headers):
        self.send_response(code)
        self.rec["status"] = code
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def _simple(self, code, text, headers=()):
        data = text.encode()
        hdrs = list(headers)
        hdrs.append(("Content-Type", "text/plain"))
        hdrs.append(("Content-Length", str(len(data))))
        self._start(code, hdrs)
        if not self.head:
            self._send(data)

    def _error(self, code, retry_after=None):
        hdrs = []
        if retry_after is not None and code in (429, 503):
            hdrs.append(("Retry-After", retry_after))
        self._simple(code, "status %d\n" % code, hdrs)

    def _reset(self):
        """Abort the connection with a RST once the peer has the data."""
        fd = self.connection.fileno()
        deadline = time.monotonic() + RESET_DRAIN_SECONDS
        while time.monotonic() < deadline:
            try:
                buf = fcntl.ioctl(fd, SIOCOUTQ, struct.pack("i", 0))
            except OSError:
                break
            if struct.unpack("i", buf)[0] == 0:
                break
            time.sleep(0.002)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        # The file objects hold references; the descriptor closes (and the
        # RST goes out) only when all of them are gone. The handler still
        # flushes wfile afterwards, so it gets a harmless stand-in.
        self.wfile.close()
        self.rfile.close()
        self.connection.close()
        self.wfile = io.BytesIO()

    def _hang(self):
        self.close_connection = True
        conn = self.connection
        conn.settimeout(0.2)
        while not self.server.stopping.is_set():
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break

    # -- the resource -----------------------------------------------------

    def _serve(self, head):
        self.head = head
        now = time.time()
        target = self.path
        if target.startswith("/"):
            path, _, query = target.partition("?")
            path = path.partition("#")[0]
            query = query.partition("#")[0]
        else:
            u = urllib.parse.urlsplit(target)
            path, query = u.path, u.query
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        key = params.get("key") or (path + "?" + query)
        srv = self.server
        served = path.startswith("/f/")
        with srv.lock:
            n = srv.counters.get(key, 0) + 1
            srv.counters[key] = n
            if served:
                srv.inflight += 1
                srv.inflight_max = max(srv.inflight_max, srv.inflight)
        self.rec = {
            "time": now, "method": self.command, "path": path,
            "query": query, "key": key, "range": self.headers.get("Range"),
            "if_range": self.headers.get("If-Range"),
            "status": 0, "sent": 0, "n": n,
            "headers": [[k, v] for k, v in self.headers.items()],
            "peer": list(self.client_address[:2]),
        }
        try:
            self._respond(path, params, n)
        except BadRequest as e:
            try:
                self.close_connection = True
                self._simple(400, "bad request: %s\n" % e)
            except OSError:
                pass
        except OSError:
            # The client went away, or the socket was reset: aborted.
            self.close_connection = True
        finally:
            # Logged first: once "now" reads 0, every request is in the log.
            srv.log(self.rec)
            if served:
                with srv.lock:
                    srv.inflight -= 1

    @staticmethod
    def _nth(params, name, n):
        values = (params.get(name) or "").split(",")
        return values[min(n, len(values)) - 1] if values != [""] else None

    def _validators(self, params, n):
        """The n-th request's ETag and Last-Modified headers."""
        hdrs = []
        tag = self._nth(params, "etag", n)
        if tag is not None:
            weak = "W/" if _int(params, "weak", 0, 0) else ""
            hdrs.append(("ETag", '%s"%s"' % (weak, tag)))
        when = self._nth(params, "lastmod", n)
        if when is not None:
            try:
                stamp = float(when)
            except ValueError:
                raise BadRequest("lastmod must be epoch seconds")
            hdrs.append(("Last-Modified",
                         email.utils.formatdate(stamp, usegmt=True)))
        return hdrs

    def _if_range_holds(self, hdrs):
        """No If-Range, or one naming this very response: the strong
        ETag or the Last-Modified date, compared exactly."""
        cond = self.headers.get("If-Range")
        if cond is None:
            return True
        mine = dict(hdrs)
        tag = mine.get("ETag")
        if tag is not None and not tag.startswith("W/") and cond == tag:
            return True
        return cond == mine.get("Last-Modified")

    def _not_modified(self, hdrs):
        """If-None-Match or If-Modified-Since says the client's copy is
        this response's resource."""
        mine = dict(hdrs)
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            tag = mine.get("ETag")
            if tag is None:
                return False
            want = tag[2:] if tag.startswith("W/") else tag
            for t in (x.strip() for x in inm.split(",")):
                if t == "*" or (t[2:] if t.startswith("W/") else t) == want:
                    return True
            return False
        ims = self.headers.get("If-Modified-Since")
        lm = mine.get("Last-Modified")
        if ims is None or lm is None:
            return False
        try:
            since = email.utils.parsedate_to_datetime(ims)
            when = email.utils.parsedate_to_datetime(lm)
        except (TypeError, ValueError):
            return False
        return when <= since

    def _statuses(self, params):
        """The status=A,B,C list (default [200]), checked."""
        if not params.get("status"):
            return [200]
        try:
            statuses = [int(s, 10) for s in params["status"].split(",")]
        except ValueError:
            raise BadRequest("status: not a list of integers")
        if any(s < 200 or s > 599 for s in statuses):
            raise BadRequest("status: outside 200..599")
        return statuses

    def _post(self, path, params, n):
        """A webhook: log the body, answer the n-th status."""
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > 64 * 1024:
            raise BadRequest("Content-Length: outside 0..65536")
        data = self.rfile.read(length) if length else b""
        self.rec["body"] = data.decode("utf-8", "replace")
        self.rec["ctype"] = self.headers.get("Content-Type")
        if not path.startswith("/hook/"):
            self._error(404)
            return
        statuses = self._statuses(params)
        delay = _int(params, "delay", 0, 0)
        if delay:
            time.sleep(delay / 1000.0)
        self._error(statuses[min(n, len(statuses)) - 1])

    def _respond(self, path, params, n):
        srv = self.server
        if self.command == "POST":
            self._post(path, params, n)
            return
        if path == "/ping":
            self._simple(200, "pong")
            return
        if path == "/concurrency":
            with srv.lock:
                now, peak = srv.inflight, srv.inflight_max
                if params.get("reset"):
                    srv.inflight_max = srv.inflight
            self._simple(200, json.dumps({"now": now, "max": peak}) + "\n")
            return
        if path == "/reset-counters":
            with srv.lock:
                srv.counters.clear()
            self._simple(200, "reset\n")
            return
        if not path.startswith("/f/"):
            self._error(404)
            return

        size = _int(params, "size", 1024, 0)
        try:
            seed = int(self._nth(params, "seed", n) or 0)
        except ValueError:
            raise BadRequest("seed: not a list of integers")
        delay = _int(params, "delay", 0, 0)
        use_range = _int(params, "range", 1, 0) != 0
        cr_shift = _int(params, "cr_shift", 0, 0)
        cr_on = _int(params, "cr_on", 0, 0)
        truncate = _int(params, "truncate", None, 0)
        reset = _int(params, "reset", None, 0)
        faults = _int(params, "faults", 1, 0)
        drip = _int(params, "drip", 0, 0)
        hang = _int(params, "hang", 0, 0) != 0
        redirect = params.get("redirect")
        retry_after = params.get("retry_after")
        ctype = params.get("ctype") or "application/octet-stream"
        statuses = self._statuses(params)
        status = statuses[min(n, len(statuses)) - 1]

        if delay:
            time.sleep(delay / 1000.0)
        if hang:
            self._hang()
            return

        if redirect is not None and 200 <= status < 400:
            code = status if status >= 300 else 302
            self._start(code, [("Location", redirect),
                               ("Content-Length", "0")])
            return
        if 300 <= status < 400:
            hdrs = [] if status == 304 else [("Content-Length", "0")]
            self._start(status, hdrs)
            return
        if status >= 400:
            self._error(status, retry_after)
            return
        if status == 204:
            self._start(204, [])
            return

        code = status
        start, end = 0, size
        hdrs = [("Content-Type", ctype)] + self._validators(params, n)
        if use_range:
            hdrs.append(("Accept-Ranges", "bytes"))
        if status == 200 and self._not_modified(hdrs):
            self._start(304, [h for h in hdrs if h[0] != "Content-Type"])
            return
        if use_range and status == 200 and self._if_range_holds(hdrs):
            r = parse_range(self.headers.get("Range"), size)
            if r == "unsat":
                self._simple(416, "status 416\n",
                             [("Content-Range", "bytes */%d" % size)])
                return
            if r is not None:
                start, end = r
                total = str(size)
                if n == cr_on:
                    # Another range than asked, said so in Content-Range,
                    # with the complete length unknown ("*"), so only the
                    # range itself tells.
                    start = min(start + cr_shift, end)
                    total = "*"
                code = 206
                hdrs.append(("Content-Range",
                             "bytes %d-%d/%s" % (start, end - 1, total)))
        length = end - start
        hdrs.append(("Content-Length", str(length)))

        fault, limit = None, length
        if n <= faults and not self.head:
            if truncate is not None:
                fault, limit = "truncate", min(truncate, length)
            elif reset is not None:
                fault, limit = "reset", min(reset, length)

        self._start(code, hdrs)
        if self.head:
            return
        self._body(seed, start, limit, drip)
        if fault == "truncate" and limit < length:
            self.close_connection = True
        elif fault == "reset" and limit < length:
            self._reset()

    def _body(self, seed, offset, length, drip):
        if drip > 0:
            chunk = max(1, drip // 20)
            t0 = time.monotonic()
            done = 0
            while done < length:
                k = min(chunk, length - done)
                self._send(body_slice(seed, offset + done, k))
                done += k
                if done < length:
                    wait = t0 + done / drip - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
            return
        done = 0
        while done < length:
            k = min(CHUNK, length - done)
            self._send(body_slice(seed, offset + done, k))
            done += k


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, addr, handler, logfile):
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, handler)
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.counters = {}
        self.inflight = 0           # requests for /f/ being served
        self.inflight_max = 0       # the most at once
        self.stopping = threading.Event()
        self.logf = open(logfile, "a", encoding="utf-8")

    def log(self, rec):
        line = json.dumps(rec, sort_keys=False) + "\n"
        with self.log_lock:
            if self.logf.closed:
                return
            self.logf.write(line)
            self.logf.flush()

    def close_log(self):
        with self.log_lock:
            self.logf.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="test HTTP server for fetchd")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--bind", default="127.0.0.1")
    args = ap.parse_args(argv)

    try:
        srv = Server((args.bind, args.port), Handler, args.log)
    except OSError as e:
        print("httpd.py: %s port %d: %s" % (args.bind, args.port, e),
              file=sys.stderr)
        return 1

    def stop(signum, frame):
        if not srv.stopping.is_set():
            srv.stopping.set()
            threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)

    srv.serve_forever(poll_interval=0.05)
    srv.server_close()
    srv.close_log()
    return 0


if __name__ == "__main__":
    sys.exit(main())
