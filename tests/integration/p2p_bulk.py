#!/usr/bin/env python3
"""Bulk helpers for tests/integration/p2p_bulk*.sh (loopback only, bounded in time).

  echo-server                 listen on 127.0.0.1:0, print the port, echo every connection
                              (half-close passed on: EOF in -> shutdown(SHUT_WR) out)
  client PORT BYTES N [SEED]  N concurrent connections; each sends BYTES of a pseudo-random
                              stream (seeded per connection), half-closes, and reads the echo;
                              SHA-256 of what was sent and of what came back are compared per
                              connection. Prints one JSON line; exit 0 only if all N matched.
Nothing is buffered whole: 256 MiB streams run in constant memory.
"""
import hashlib
import json
import random
import socket
import sys
import threading
import time

CHUNK = 1 << 16
DEADLINE_S = 240


def echo_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    print(srv.getsockname()[1], flush=True)

    def serve(c):
        with c:
            try:
                while True:
                    b = c.recv(1 << 18)
                    if not b:
                        break
                    c.sendall(b)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def one_client(port, size, seed, out, i):
    res = {"i": i, "sent": 0, "got": 0, "ok": False, "error": None}
    out[i] = res
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.settimeout(60)
        sent_h = hashlib.sha256()

        def writer():
            rnd = random.Random(seed)
            left = size
            try:
                while left:
                    n = CHUNK if left > CHUNK else left
                    b = rnd.randbytes(n)
                    sent_h.update(b)
                    s.sendall(b)
                    res["sent"] += n
                    left -= n
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                res["error"] = "send: %s" % e

        t = threading.Thread(target=writer)
        t.start()
        got_h = hashlib.sha256()
        while True:
            b = s.recv(1 << 18)
            if not b:
                break
            got_h.update(b)
            res["got"] += len(b)
        t.join(DEADLINE_S)
        s.close()
        res["ok"] = (res["error"] is None and res["sent"] == size and res["got"] == size and
                     sent_h.digest() == got_h.digest())
        if not res["ok"] and res["error"] is None:
            res["error"] = "digest or length differs"
    except OSError as e:
        res["error"] = str(e)


def client(port, size, n, seed):
    out = [None] * n
    t0 = time.monotonic()
    ts = [threading.Thread(target=one_client, args=(port, size, seed + i, out, i), daemon=True)
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(1.0, DEADLINE_S - (time.monotonic() - t0)))
    done = [r for r in out if r is not None]
    ok = len(done) == n and all(r["ok"] for r in done)
    bad = [r for r in done if not r["ok"]][:5]
    print(json.dumps({"connections": n, "bytes_each": size, "ok": ok,
                      "matched": sum(1 for r in done if r["ok"]),
                      "seconds": round(time.monotonic() - t0, 2), "bad": bad}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "echo-server":
        echo_server()
    elif len(sys.argv) >= 5 and sys.argv[1] == "client":
        sys.exit(client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                        int(sys.argv[5]) if len(sys.argv) > 5 else 1))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
