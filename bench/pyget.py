#!/usr/bin/python3
"""The Python tutorials' way of downloading a list concurrently, as a peer
in the throughput experiment: urllib.request in a ThreadPoolExecutor(C) or a
multiprocessing.Pool(C) (default fork start, default chunk size).

usage: pyget.py threads|processes COUNT LIST OUTDIR

LIST has one tab-separated line per URL: url, file name, and an optional
sha256 that is checked while the file is written. Exits 1 if any URL failed.
"""
import concurrent.futures
import hashlib
import multiprocessing
import os
import sys
import urllib.request

OUTDIR = "."


def fetch(item):
    url, name, sha = item
    digest = hashlib.sha256() if sha else None
    size = 0
    with urllib.request.urlopen(url, timeout=120) as resp, \
            open(os.path.join(OUTDIR, name), "wb") as out:
        while True:
            chunk = resp.read(65536)
            if not chunk:
                break
            if digest is not None:
                digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    if digest is not None and digest.hexdigest() != sha:
        raise ValueError("%s: sha256 mismatch" % url)
    return size


def read_list(path):
    items = []
    with open(path, encoding="ascii") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                continue
            items.append((fields[0], fields[1],
                          fields[2] if len(fields) > 2 else ""))
    return items


def main():
    global OUTDIR
    if len(sys.argv) != 5 or sys.argv[1] not in ("threads", "processes"):
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    mode, count, OUTDIR = sys.argv[1], int(sys.argv[2]), sys.argv[4]
    items = read_list(sys.argv[3])
    if mode == "threads":
        with concurrent.futures.ThreadPoolExecutor(max_workers=count) as ex:
            sizes = list(ex.map(fetch, items))
    else:
        with multiprocessing.Pool(count) as pool:
            sizes = pool.map(fetch, items)
    print("%d files, %d bytes" % (len(sizes), sum(sizes)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a failed URL fails the run
        print("pyget: %s" % e, file=sys.stderr)
        sys.exit(1)
