#!/usr/bin/env python3
"""Paced two-way transfers for tests/lab/migrate_lab.sh (lab namespaces only, bounded in time).

  echo-server                 listen on 127.0.0.1:0, print the port, echo every connection
  client PORT BYTES RATE OUT  one connection: send BYTES random bytes at RATE bytes/s while
                              reading the echo; write a JSON report to OUT (sent, received,
                              sha256 of both, error: "" / "reset" / "eof" / "timeout" / ...,
                              seconds) and exit 0 only when the echo equals what was sent.
  engine SOCK JSON             one request on the engine's control socket; prints the reply
A reset of the application's connection shows as error "reset" (ConnectionResetError).
"""
import hashlib
import json
import os
import socket
import sys
import threading
import time


def echo_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(srv.getsockname()[1], flush=True)

    def serve(c):
        with c:
            try:
                while True:
                    b = c.recv(262144)
                    if not b:
                        break
                    c.sendall(b)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def err_name(e):
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, socket.timeout):
        return "timeout"
    return type(e).__name__


def client(port, size, rate, out):
    start = time.monotonic()
    rep = {"sent": 0, "received": 0, "error": "", "rx_error": ""}
    tx = hashlib.sha256()
    rx = hashlib.sha256()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
    except OSError as e:
        # refused at once (the engine reset the accepted connection before connect returned)
        rep.update(error=err_name(e), sha_sent="", sha_received="", ok=False, seconds=0)
        with open(out, "w") as f:
            json.dump(rep, f)
        return 1
    s.settimeout(30)

    def reader():
        try:
            while True:
                b = s.recv(262144)
                if not b:
                    break
                rx.update(b)
                rep["received"] += len(b)
        except OSError as e:
            rep["rx_error"] = err_name(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    chunk = 16384
    try:
        while rep["sent"] < size and not rep["rx_error"]:
            n = min(chunk, size - rep["sent"])
            b = os.urandom(n)
            tx.update(b)
            s.sendall(b)
            rep["sent"] += n
            ahead = rep["sent"] / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        if not rep["rx_error"]:
            s.shutdown(socket.SHUT_WR)
    except OSError as e:
        rep["error"] = err_name(e)
    t.join(60)
    rep["error"] = rep["error"] or rep["rx_error"] or ("" if rep["received"] == size else "eof")
    rep["sha_sent"] = tx.hexdigest()
    rep["sha_received"] = rx.hexdigest()
    rep["seconds"] = round(time.monotonic() - start, 3)
    rep["ok"] = not rep["error"] and rep["sha_sent"] == rep["sha_received"]
    s.close()
    with open(out, "w") as f:
        json.dump(rep, f)
    return 0 if rep["ok"] else 1


def engine(sock, req):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(req.encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        b = s.recv(65536)
        if not b:
            break
        buf += b
    print(buf.decode().strip())


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "echo-server":
        echo_server()
    elif len(sys.argv) == 4 and sys.argv[1] == "engine":
        engine(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "client":
        sys.exit(client(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
