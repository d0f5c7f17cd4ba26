#!/usr/bin/env python3
"""Helpers for tests/integration/p2p_wire_bridge.sh (loopback only, bounded in time).

  echo-server            listen on 127.0.0.1:0, print the port, echo every connection
  client PORT BYTES N    N concurrent connections, each sends BYTES random bytes and reads
                         them back; exit 0 only if every SHA-256 matches (prints totals)
"""
import hashlib
import os
import socket
import sys
import threading


def echo_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)

    def serve(c):
        with c:
            while True:
                b = c.recv(262144)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def one_client(port, size, results, i):
    data = os.urandom(size)
    want = hashlib.sha256(data).hexdigest()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.settimeout(60)

    def writer():
        for off in range(0, size, 65536):
            s.sendall(data[off:off + 65536])
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer)
    t.start()
    h = hashlib.sha256()
    got = 0
    while True:
        b = s.recv(262144)
        if not b:
            break
        h.update(b)
        got += len(b)
    t.join()
    s.close()
    results[i] = (got, h.hexdigest() == want)


def client(port, size, n):
    results = [None] * n
    ts = [threading.Thread(target=one_client, args=(port, size, results, i)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    ok = all(r is not None and r[0] == size and r[1] for r in results)
    print("connections=%d bytes_each=%d ok=%s results=%s" % (n, size, ok, results), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1] == "echo-server":
        echo_server()
    elif sys.argv[1] == "client":
        sys.exit(client(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    else:
        sys.exit(2)
