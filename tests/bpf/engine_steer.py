#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""natx-engine SO_REUSEPORT steering, end to end on loopback.

engine_steer.py MODE PROTO [6]   (MODE bpf|kernel, PROTO tcp|udp; 6: IPv6 on ::1). Starts
natx-engine with 2 shards, --steer MODE and one PROTO forward to an echo upstream, then opens
40 flows, one at a time, each from a chosen client port on 127.0.0.1 (or ::1), below the
kernel's ephemeral range so other programs' connections rarely hold them. After each flow it reads the per-shard
stats over the control socket and finds the one shard whose flows_total went up.
  bpf:    that shard must be the one natx-flowshard (the engine's own flow_key_hash) names,
          for every flow; the program's "steered" counter must have moved; both shards used;
          forward.rm leaves no steered group behind.
  kernel: every flow must be served (echo back, exactly one shard counted it); hello and
          stats must say "kernel".
Exit 0 pass, 1 fail, 77 skipped (BPF not permitted for MODE bpf).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ["NATX_BIN"]
BUILD = os.environ.get("NATX_BUILD", os.path.join(BIN, ".."))
FLOWSHARD = os.path.join(BUILD, "tests", "natx-flowshard")
FLOWS = 40


def fail(msg):
    print(f"[engine_steer] FAIL: {msg}", flush=True)
    sys.exit(1)


def log(msg):
    print(f"[engine_steer] {msg}", flush=True)


def echo_upstream(proto, fam, host):
    """An echo server on HOST:0 in a daemon thread; returns its port."""
    if proto == "tcp":
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.bind((host, 0))
        ls.listen(64)

        def conn(c):
            with c:
                while True:
                    d = c.recv(4096)
                    if not d:
                        return
                    c.sendall(d)

        def loop():
            while True:
                c, _ = ls.accept()
                threading.Thread(target=conn, args=(c,), daemon=True).start()
    else:
        ls = socket.socket(fam, socket.SOCK_DGRAM)
        ls.bind((host, 0))

        def loop():
            while True:
                d, a = ls.recvfrom(4096)
                ls.sendto(d, a)
    threading.Thread(target=loop, daemon=True).start()
    return ls.getsockname()[1]


class Ctl:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(5)
        self.s.connect(path)
        self.f = self.s.makefile("r")
        self.id = 0

    def call(self, cmd, **args):
        self.id += 1
        self.s.sendall((json.dumps({"v": 1, "id": self.id, "cmd": cmd, **args}) + "\n").encode())
        r = json.loads(self.f.readline())
        if not r.get("ok"):
            fail(f"{cmd}: {r}")
        return r


def flow_once(proto, fam, host, fport, cport):
    """One flow from HOST:cport; True when the echo came back."""
    typ = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(fam, typ)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(3)
    try:
        s.bind((host, cport))
    except OSError:
        s.close()
        return None  # port busy on this machine: not a verdict, try another
    msg = f"hello from {cport}".encode()
    try:
        s.connect((host, fport))
        s.send(msg)
        return s.recv(4096) == msg
    except OSError:
        return False
    finally:
        s.close()


def main():
    mode, proto = sys.argv[1], sys.argv[2]
    v6 = len(sys.argv) > 3 and sys.argv[3] == "6"
    fam, host = (socket.AF_INET6, "::1") if v6 else (socket.AF_INET, "127.0.0.1")
    shost = "[::1]" if v6 else "127.0.0.1"
    d = tempfile.mkdtemp(prefix="natxbpe-")
    ctl_path = os.path.join(d, "ctl.sock")
    up = echo_upstream(proto, fam, host)
    logf = open(os.path.join(d, "engine.log"), "w+")
    eng = subprocess.Popen([os.path.join(BIN, "natx-engine"), "--shards", "2", "--no-pin",
                            "--steer", mode, "--ctl", ctl_path,
                            "--forward", f"{proto}:{shost}:0={shost}:{up}"],
                           stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 10
        while not os.path.exists(ctl_path):
            if eng.poll() is not None:
                logf.seek(0)
                text = logf.read()
                if mode == "bpf" and eng.returncode != 0 and "--steer bpf:" in text:
                    print(f"SKIP: BPF steering not available here: {text.strip()}")
                    sys.exit(77)
                fail(f"engine exited {eng.returncode}: {text}")
            if time.time() > deadline:
                fail("engine did not come up")
            time.sleep(0.05)
        ctl = Ctl(ctl_path)
        hello = ctl.call("hello")
        if hello.get("steering") != mode:
            fail(f"hello says steering {hello.get('steering')!r}, asked for {mode}")
        fw = ctl.call("forward.list")["forwards"][0]
        fid, fport = fw["id"], int(fw["listen"].rsplit(":", 1)[1])
        st = ctl.call("stats")
        if st["steering"]["mode"] != mode:
            fail(f"stats steering: {st['steering']}")
        if mode == "bpf" and st["steering"]["groups"] != 1:
            fail(f"one forward, one steered group expected: {st['steering']}")
        steered0 = st["steering"]["steered"]
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo = int(f.read().split()[0])
        span = max(eph_lo - 10000 - FLOWS * 4, 1000)
        base = 10000 + (os.getpid() * 97) % span
        ports = list(range(base, base + FLOWS * 4))
        out = subprocess.run([FLOWSHARD, str(fid), "2", host] + [str(p) for p in ports],
                             check=True, capture_output=True, text=True).stdout
        want = {int(a): int(b) for a, b in (line.split() for line in out.splitlines())}
        prev = [s["flows_total"] for s in st["shards"]]
        landed, done = {}, 0
        for p in ports:
            if done == FLOWS:
                break
            ok = flow_once(proto, fam, host, fport, p)
            if ok is None:
                continue
            if not ok:
                fail(f"flow from port {p} was not served")
            cur = prev
            for _ in range(100):  # the counter moves at accept / first datagram
                cur = [s["flows_total"] for s in ctl.call("stats")["shards"]]
                if sum(cur) > sum(prev):
                    break
                time.sleep(0.01)
            moved = [i for i in range(2) if cur[i] != prev[i]]
            if len(moved) != 1 or cur[moved[0]] != prev[moved[0]] + 1:
                fail(f"flow from port {p}: flows_total {prev} -> {cur}")
            landed[p] = moved[0]
            prev = cur
            done += 1
        if done < FLOWS:
            fail(f"only {done} client ports could be bound")
        st = ctl.call("stats")
        if mode == "bpf":
            wrong = [(p, s, want[p]) for p, s in landed.items() if s != want[p]]
            if wrong:
                fail(f"{len(wrong)} of {FLOWS} flows on the wrong shard (port, got, want): "
                     f"{wrong[:8]}")
            if len(set(landed.values())) != 2:
                fail(f"all {FLOWS} flows on one shard: {landed}")
            if st["steering"]["steered"] - steered0 < FLOWS:
                fail(f"program counted {st['steering']['steered'] - steered0} steered, "
                     f"expected >= {FLOWS}")
            ctl.call("forward.rm", fwd_id=fid)
            groups = ctl.call("stats")["steering"]["groups"]
            if groups != 0:
                fail(f"forward.rm left {groups} steered group(s)")
            log(f"{proto}{' IPv6' if v6 else ''}: {FLOWS} flows, each on the shard "
                f"flow_key_hash names "
                f"(shard 0: {list(landed.values()).count(0)}, "
                f"shard 1: {list(landed.values()).count(1)}); steered "
                f"{st['steering']['steered']}")
        else:
            if not st["steering"]["reason"]:
                fail(f"kernel steering without a reason: {st['steering']}")
            agree = sum(1 for p, s in landed.items() if s == want[p])
            log(f"{proto}: {FLOWS} flows served with the kernel hash; {agree} happened to "
                f"land where flow_key_hash says (not asserted)")
        ctl.call("shutdown", drain_ms=0)
        eng.wait(timeout=10)
    finally:
        if eng.poll() is None:
            eng.kill()
            eng.wait()


if __name__ == "__main__":
    main()
