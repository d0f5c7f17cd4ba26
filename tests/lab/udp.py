#!/usr/bin/env python3
# tests/lab/udp.py - one UDP datagram out, or wait for one, for the NAT lab's tests.
#   udp.py send [--bind PORT] [--ttl N] HOST PORT TEXT
#   udp.py recv --bind PORT [--timeout SEC]   prints "SRC_IP:SRC_PORT TEXT"; exit 1 on timeout
import argparse
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["send", "recv"])
    ap.add_argument("--bind", type=int, default=0)
    ap.add_argument("--ttl", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("rest", nargs="*")
    a = ap.parse_intermixed_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", a.bind))
    if a.mode == "send":
        if len(a.rest) != 3:
            ap.error("send needs HOST PORT TEXT")
        if a.ttl:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, a.ttl)
        s.sendto(a.rest[2].encode(), (a.rest[0], int(a.rest[1])))
        return 0
    s.settimeout(a.timeout)
    try:
        data, src = s.recvfrom(65535)
    except socket.timeout:
        return 1
    print("%s:%d %s" % (src[0], src[1], data.decode(errors="replace")))
    return 0


sys.exit(main())
