#!/usr/bin/env python3
# tests/lab/udp_echo.py - UDP echo service and checking client for tests/lab/udp_punch_lab.sh.
#   udp_echo.py server                 bind 127.0.0.1:0, print the port, echo every datagram back
#                                      to its sender; prints "count N" to stderr every 1000
#   udp_echo.py client PORT N TAG      N numbered datagrams (sizes 1..1200, content derived from
#                                      TAG and the number) to 127.0.0.1:PORT with up to 16 in
#                                      flight; each echo must equal what was sent; a datagram not
#                                      echoed within 1 s is sent again (counted). Prints
#                                      "ok N echoed, R resent, T s"; exit 1 on a wrong echo, 2 when
#                                      not done within 60 s.
#   udp_echo.py send HOST PORT HEX     one datagram with the given bytes (garbage tests)
import socket
import sys
import time


def payload(tag, i):
    n = 1 + (i * 7919) % 1200
    head = ("%s:%d:" % (tag, i)).encode()
    body = bytes((i * 31 + k) & 0xFF for k in range(max(0, n - len(head))))
    return head + body


def server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1], flush=True)
    count = 0
    while True:
        data, src = s.recvfrom(65535)
        s.sendto(data, src)
        count += 1
        if count % 1000 == 0:
            print("count %d" % count, file=sys.stderr, flush=True)


def client(port, n, tag):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.05)
    dst = ("127.0.0.1", port)
    t0 = time.monotonic()
    pending = {}  # i -> last send time
    nxt = 0
    done = 0
    resent = 0
    seen = set()
    while done < n:
        now = time.monotonic()
        if now - t0 > 60:
            print("timeout: %d of %d echoed, %d resent" % (done, n, resent))
            return 2
        while len(pending) < 16 and nxt < n:
            s.sendto(payload(tag, nxt), dst)
            pending[nxt] = now
            nxt += 1
        for i, t in list(pending.items()):
            if now - t > 1.0:
                s.sendto(payload(tag, i), dst)
                pending[i] = now
                resent += 1
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            continue
        try:
            t, i, _ = data.split(b":", 2)
            i = int(i)
        except ValueError:
            print("bad echo (no header): %r" % data[:40])
            return 1
        if t.decode(errors="replace") != tag or i >= nxt or data != payload(tag, i):
            print("wrong echo: %r" % data[:40])
            return 1
        if i in seen:
            continue  # the echo of a resent datagram
        seen.add(i)
        pending.pop(i, None)
        done += 1
    print("ok %d echoed, %d resent, %.2f s" % (n, resent, time.monotonic() - t0))
    return 0


def send(host, port, hexdata):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(bytes.fromhex(hexdata), (host, port))
    return 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "server":
        sys.exit(server())
    if len(a) == 4 and a[0] == "client":
        sys.exit(client(int(a[1]), int(a[2]), a[3]))
    if len(a) == 4 and a[0] == "send":
        sys.exit(send(a[1], int(a[2]), a[3]))
    print(__doc__ or "usage: udp_echo.py server | client PORT N TAG | send HOST PORT HEX")
    sys.exit(64)
