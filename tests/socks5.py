#!/usr/bin/env python3
"""
socks5.py: the proxy the end-to-end tests send fetchd's transfers through.

    python3 socks5.py --port-file FILE --log FILE [--bind 127.0.0.1]
                      [--tls CERT KEY]

Without --tls it is a SOCKS5 server (RFC 1928): no authentication (method
0x00, the only one offered), CONNECT only, to an IPv4 address, an IPv6
address or a host name (resolved here, as socks5h:// asks). With --tls it
is an HTTPS proxy instead: TLS with the certificate CERT and key KEY, then
either one "CONNECT host:port HTTP/1.1" request, answered "200 Connection
established" (libcurl's way for https:// URLs), or one request for an
absolute http:// URL (its way for http:// URLs), passed on as it is with
"Connection: close" added, so that each proxy connection carries one
request. Either way the bytes are then relayed both ways until one side
closes.

The port is written to FILE (through FILE.tmp and a rename) once the socket
listens. SIGTERM or SIGINT stops it with status 0.

Every tunnel becomes one JSON line in the log, written and flushed when the
tunnel to the target is open (or refused):

    {"time", "kind": "socks5" | "connect" | "forward", "client": [address, port],
     "target": [host, port] as the client asked, "upstream": [address,
     port] this side of the connection to the target (what the target sees
     as its peer), or null when it failed, "error": null or why}
"""

import argparse
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time


class Proxy:
    def __init__(self, bind, logfile, tls):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((bind, 0))
        self.sock.listen(64)
        self.logf = open(logfile, "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(tls[0], tls[1])

    def log(self, rec):
        with self.lock:
            self.logf.write(json.dumps(rec) + "\n")
            self.logf.flush()

    def serve(self):
        while True:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn, addr),
                             daemon=True).start()

    def handle(self, conn, addr):
        rec = {"time": time.time(), "kind": "connect" if self.ctx else
               "socks5", "client": list(addr[:2]), "target": None,
               "upstream": None, "error": None}
        up = None
        try:
            conn.settimeout(10)
            if self.ctx:
                conn = self.ctx.wrap_socket(conn, server_side=True)
                up = self.http_connect(conn, rec)
            else:
                up = self.socks5(conn, rec)
        except (OSError, ValueError, ssl.SSLError) as e:
            rec["error"] = rec["error"] or str(e)
        self.log(rec)
        if up is None:
            conn.close()
            return
        conn.settimeout(None)
        relay(conn, up)

    def open_target(self, host, port, rec):
        rec["target"] = [host, port]
        try:
            up = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            rec["error"] = "connect: %s" % e
            return None
        rec["upstream"] = list(up.getsockname()[:2])
        return up

    def socks5(self, conn, rec):
        ver, n = struct.unpack("BB", recv_exact(conn, 2))
        methods = recv_exact(conn, n)
        if ver != 5 or 0 not in methods:
            conn.sendall(b"\x05\xff")
            raise ValueError("no acceptable method")
        conn.sendall(b"\x05\x00")
        ver, cmd, _, atyp = struct.unpack("BBBB", recv_exact(conn, 4))
        if atyp == 1:
            host = socket.inet_ntop(socket.AF_INET, recv_exact(conn, 4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, recv_exact(conn, 16))
        elif atyp == 3:
            host = recv_exact(conn, recv_exact(conn, 1)[0]).decode()
        else:
            raise ValueError("address type %d" % atyp)
        port = struct.unpack("!H", recv_exact(conn, 2))[0]
        rec["atyp"] = {1: "ipv4", 3: "domain", 4: "ipv6"}[atyp]
        if ver != 5 or cmd != 1:
            conn.sendall(b"\x05\x07\x00\x01" + bytes(6))
            raise ValueError("command %d not supported" % cmd)
        up = self.open_target(host, port, rec)
        reply = 0 if up is not None else 5
        conn.sendall(struct.pack("BBBB", 5, reply, 0, 1) + bytes(6))
        return up

    def http_connect(self, conn, rec):
        head = b""
        while b"\r\n\r\n" not in head:
            data = conn.recv(4096)
            if not data or len(head) > 65536:
                raise ValueError("no complete request")
            head += data
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith("http://"):
            return self.http_forward(conn, head, parts[1], rec)
        if len(parts) != 3 or parts[0] != "CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n"
                         b"Content-Length: 0\r\n\r\n")
            raise ValueError("not a CONNECT: %s" % line)
        host, _, port = parts[1].rpartition(":")
        up = self.open_target(host.strip("[]"), int(port), rec)
        if up is None:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\n"
                         b"Content-Length: 0\r\n\r\n")
            return None
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        return up


    def http_forward(self, conn, head, url, rec):
        rec["kind"] = "forward"
        hostport = url[len("http://"):].split("/", 1)[0]
        host, _, port = hostport.rpartition(":")
        up = self.open_target(host.strip("[]"), int(port or 80), rec)
        if up is None:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\n"
                         b"Content-Length: 0\r\n\r\n")
            return None
        end = head.index(b"\r\n\r\n")
        up.sendall(head[:end] + b"\r\nConnection: close" + head[end:])
        return up


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ValueError("peer closed")
        data += chunk
    return data


def relay(a, b):
    """Copy both ways until either side is done, then close both."""
    def pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    t = threading.Thread(target=pump, args=(b, a), daemon=True)
    t.start()
    pump(a, b)
    t.join()
    a.close()
    b.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="test proxy for fetchd")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    args = ap.parse_args(argv)
    proxy = Proxy(args.bind, args.log, args.tls)

    def stop(signum, frame):
        proxy.logf.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % proxy.sock.getsockname()[1])
    os.rename(tmp, args.port_file)
    proxy.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
