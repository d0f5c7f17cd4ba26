#!/usr/bin/env python3
"""Transfers for the NAT lab matrix and failure tests (tests/lab/connect_matrix.sh,
tests/lab/connect_failure.sh). Loopback only inside a lab namespace, every wait bounded.

  sink-server             listen on 127.0.0.1:0, print the port; for each connection read to
                          EOF, then answer "<bytes> <sha256 hex>\\n" and close
  send PORT BYTES [TMO [RATE]]
                          connect to 127.0.0.1:PORT, send BYTES pseudo-random bytes (at most
                          RATE MiB/s when given and > 0), half-close, read the sink's answer;
                          exit 0 only when the byte count and SHA-256 match (prints "ok BYTES
                          SECONDS MiB/s"); TMO seconds in all (120)
  stream PORT SECONDS     connect and send continuously for at most SECONDS; print how the
                          connection ended: "ended closed|reset|error:<e> after S s, sent N"
                          (exit 0) or "open after S s, sent N" (exit 3) when it never ended
"""
import hashlib
import os
import socket
import sys
import threading
import time

CHUNK = 256 * 1024


def sink_server():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)

    def serve(c):
        h = hashlib.sha256()
        n = 0
        try:
            with c:
                c.settimeout(600)
                while True:
                    b = c.recv(CHUNK)
                    if not b:
                        break
                    h.update(b)
                    n += len(b)
                c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
                c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def pattern(size):
    """size bytes that do not repeat within a transfer (SHA-256 counter blocks)."""
    block = bytearray()
    seed = os.urandom(16)
    i = 0
    while len(block) < 4 * 1024 * 1024:
        block += hashlib.sha256(seed + i.to_bytes(8, "little")).digest() * 64
        i += 1
    block = bytes(block[:4 * 1024 * 1024])
    out = bytearray()
    k = 0
    while len(out) < size:
        # a fresh prefix per 4 MiB block so blocks differ
        out += k.to_bytes(8, "little") + block[8:]
        k += 1
    return bytes(out[:size])


def send(port, size, tmo, rate=0.0):
    data = pattern(size)
    want = hashlib.sha256(data).hexdigest()
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=tmo)
    s.settimeout(tmo)
    view = memoryview(data)
    for off in range(0, size, CHUNK):
        s.sendall(view[off:off + CHUNK])
        if rate > 0:
            ahead = (off + CHUNK) / (rate * 1048576) - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        if time.monotonic() - t0 > tmo:
            print("timeout after %d bytes" % off)
            return 1
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while not reply.endswith(b"\n"):
        b = s.recv(256)
        if not b:
            break
        reply += b
    s.close()
    dt = time.monotonic() - t0
    parts = reply.decode(errors="replace").split()
    if len(parts) != 2 or parts[0] != str(size) or parts[1] != want:
        print("mismatch: sent %d sha256 %s, sink says %r" % (size, want, reply))
        return 1
    print("ok %d %.2f %.1f" % (size, dt, size / dt / 1048576))
    return 0


def stream(port, seconds):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(1)
    buf = os.urandom(CHUNK)
    sent = 0
    t0 = time.monotonic()
    how = None
    while time.monotonic() - t0 < seconds:
        try:
            sent += s.send(buf)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError) as e:
            how = "reset" if isinstance(e, ConnectionResetError) else "closed"
            break
        except OSError as e:
            how = "error:%s" % e.strerror
            break
        # an early answer or EOF from the far side (the sink answers only at EOF)
    dt = time.monotonic() - t0
    if how is None:
        print("open after %.1f s, sent %d" % (dt, sent))
        return 3
    print("ended %s after %.1f s, sent %d" % (how, dt, sent))
    return 0


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "sink-server":
        sink_server()
    elif len(sys.argv) >= 4 and sys.argv[1] == "send":
        tmo = float(sys.argv[4]) if len(sys.argv) > 4 else 120.0
        rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
        return send(int(sys.argv[2]), int(sys.argv[3]), tmo, rate)
    elif len(sys.argv) == 4 and sys.argv[1] == "stream":
        return stream(int(sys.argv[2]), float(sys.argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
