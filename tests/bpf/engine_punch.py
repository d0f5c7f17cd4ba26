#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""natx-engine punch sessions (engine/core/punch_eng.h), end to end on loopback.

engine_punch.py MODE [PIN_ROOT]
  none: natx-engine --steer kernel, 2 shards. A session alone on its own port (127.0.0.1:0)
        answers every valid probe with a PROBE_ACK (same sid and seq) to its source; hello,
        stats and punch.ls say steering "none"; malformed probes, another session's probes and
        plain data are counted (bad, data) and never answered; close/ls/errors behave.
  bpf:  (root, inside a network namespace the caller created, bpffs at PIN_ROOT's parent)
        natx-engine --steer auto, 2 shards, a UDP forward on 127.0.0.1:P (its own SO_REUSEPORT
        group, which the kernel's normal lookup prefers) and a session on 0.0.0.0:P with the
        client ports given as peers. Probes from the peer ports are all ACKed by the session,
        all counted on the session (owned by one shard) and none reach the forward's upstream;
        a datagram from a port not listed goes to the forward (normal lookup); the sk_lookup
        "steered" counter moves; after punch.close the peers' datagrams go to the forward.
Exit 0 pass, 1 fail.
"""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ["NATX_BIN"]
MAGIC = 0x0E4E5850
SID = bytes.fromhex("0123456789abcdef")
OTHER = bytes.fromhex("fedcba9876543210")


def fail(msg):
    print(f"[engine_punch] FAIL: {msg}", flush=True)
    sys.exit(1)


def log(msg):
    print(f"[engine_punch] {msg}", flush=True)


class Ctl:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.f = self.s.makefile("r")
        self.id = 0

    def raw(self, cmd, **args):
        self.id += 1
        self.s.sendall((json.dumps({"v": 1, "id": self.id, "cmd": cmd, **args}) + "\n").encode())
        return json.loads(self.f.readline())

    def call(self, cmd, **args):
        r = self.raw(cmd, **args)
        if not r.get("ok"):
            fail(f"{cmd}: {r}")
        return r


def probe(sid, seq, typ=1, version=1, tail=b""):
    return struct.pack("!IBBH8sI", MAGIC, version, typ, 0, sid, seq) + tail


def expect_ack(s, sid, seq, what):
    try:
        d, _ = s.recvfrom(2048)
    except socket.timeout:
        fail(f"{what}: no ACK for seq {seq}")
    if len(d) != 20:
        fail(f"{what}: ACK of {len(d)} bytes")
    magic, ver, typ, _flags, rsid, rseq = struct.unpack("!IBBH8sI", d)
    if (magic, ver, typ, rsid, rseq) != (MAGIC, 1, 2, sid, seq):
        fail(f"{what}: bad ACK {d.hex()} for seq {seq}")


def expect_silence(s, what, wait=0.4):
    s.settimeout(wait)
    try:
        d, _ = s.recvfrom(2048)
        fail(f"{what}: unexpected answer {d.hex()}")
    except socket.timeout:
        pass
    finally:
        s.settimeout(3)


def client(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(3)
    return s


def start_engine(d, args):
    ctl_path = os.path.join(d, "ctl.sock")
    eng = subprocess.Popen([os.path.join(BIN, "natx-engine"), "--shards", "2", "--no-pin",
                            "--ctl", ctl_path] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(200):
        if os.path.exists(ctl_path) or eng.poll() is not None:
            break
        time.sleep(0.05)
    if eng.poll() is not None or not os.path.exists(ctl_path):
        fail(f"engine did not start: {eng.communicate(timeout=5)[0]}")
    return eng, Ctl(ctl_path)


def counters(ctl, sid_hex):
    for s in ctl.call("punch.ls")["sessions"]:
        if s["sid"] == sid_hex:
            return s
    fail(f"session {sid_hex} not listed")


def wait_counter(ctl, sid_hex, name, want):
    for _ in range(50):
        sess = counters(ctl, sid_hex)
        if sess["counters"][name] >= want:
            return sess
        time.sleep(0.05)
    fail(f"counter {name} of {sid_hex} stayed at {sess['counters'][name]}, want {want}")


def case_none(d):
    eng, ctl = start_engine(d, ["--steer", "kernel"])
    try:
        h = ctl.call("hello")
        if h.get("punch_steering") != "none":
            fail(f"hello punch_steering {h.get('punch_steering')}")
        # Bad requests change nothing.
        for bad in ({"sid": "0123", "listen": "127.0.0.1:0"},
                    {"sid": "0123456789abcdeg", "listen": "127.0.0.1:0"},
                    {"sid": SID.hex(), "listen": "localhost:1"},
                    {"sid": SID.hex(), "listen": "127.0.0.1:0", "peers": ["x"]},
                    {"sid": SID.hex(), "listen": "127.0.0.1:0", "peers": "127.0.0.1:1"}):
            r = ctl.raw("punch.open", **bad)
            if r.get("ok") or r["error"]["code"] != "bad_request":
                fail(f"punch.open {bad}: {r}")
        r = ctl.call("punch.open", sid=SID.hex(), listen="127.0.0.1:0")
        if r["steering"] != "none" or r["session"]["steered"]:
            fail(f"open reply {r}")
        port = int(r["session"]["listen"].rsplit(":", 1)[1])
        r = ctl.raw("punch.open", sid=SID.hex(), listen="127.0.0.1:0")
        if r.get("ok") or r["error"]["code"] != "exists":
            fail(f"second open: {r}")
        c = client()
        for seq in range(1, 6):
            c.sendto(probe(SID, seq), ("127.0.0.1", port))
            expect_ack(c, SID, seq, "none")
        c.sendto(probe(SID, 7, version=2), ("127.0.0.1", port))  # bad version
        c.sendto(probe(SID, 8)[:19], ("127.0.0.1", port))  # short
        c.sendto(probe(OTHER, 9), ("127.0.0.1", port))  # another session's id
        c.sendto(probe(SID, 10, tail=b"x" * 200), ("127.0.0.1", port))  # over 128 bytes
        expect_silence(c, "malformed probes")
        c.sendto(b"punched flow payload", ("127.0.0.1", port))
        c.sendto(probe(SID, 11, typ=2), ("127.0.0.1", port))  # an ACK from the peer
        expect_silence(c, "data and ACK")
        sess = wait_counter(ctl, SID.hex(), "acks_in", 1)
        want = {"probes": 5, "acks": 5, "bad": 4, "data": 1, "acks_in": 1, "send_failed": 0}
        got = {k: sess["counters"][k] for k in want}
        if got != want:
            fail(f"counters {got}, want {want}")
        if sess["punched"] != [f"127.0.0.1:{c.getsockname()[1]}"]:
            fail(f"punched {sess['punched']}")
        st = ctl.call("stats")
        if st["punch"]["steering"] != "none" or st["punch"]["sessions"] != 1:
            fail(f"stats punch {st['punch']}")
        ctl.call("punch.close", sid=SID.hex())
        r = ctl.raw("punch.close", sid=SID.hex())
        if r.get("ok") or r["error"]["code"] != "not_found":
            fail(f"second close: {r}")
        if ctl.call("punch.ls")["sessions"]:
            fail("session listed after close")
        c.sendto(probe(SID, 12), ("127.0.0.1", port))
        expect_silence(c, "after close")
        log("none: session alone on its port answers probes; bad/data counted, not answered")
    finally:
        eng.terminate()
        eng.wait(timeout=10)


def upstream():
    """UDP receiver on 127.0.0.1:0 recording what the forward delivers; (port, list)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    got = []

    def loop():
        while True:
            got.append(s.recvfrom(4096)[0])
    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1], got


def case_bpf(d, pin_root):
    up, got = upstream()
    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    t.close()
    eng, ctl = start_engine(d, ["--steer", "auto", "--punch-pin-root", pin_root, "--forward",
                                f"udp:127.0.0.1:{port}=127.0.0.1:{up}"])
    try:
        peers = [client() for _ in range(6)]
        names = [f"127.0.0.1:{p.getsockname()[1]}" for p in peers]
        r = ctl.call("punch.open", sid=SID.hex(), listen=f"0.0.0.0:{port}", peers=names)
        if r["steering"] != "sk_lookup" or not r["session"]["steered"]:
            fail(f"open reply {r}")
        shard = r["session"]["shard"]
        if ctl.call("hello")["punch_steering"] != "sk_lookup":
            fail("hello does not say sk_lookup")
        # Control: without steering, the forward's more specific socket wins (checked below
        # for an unlisted port). Listed ports: every probe ACKed by the session.
        seq = 0
        for p in peers:
            for _ in range(4):
                seq += 1
                p.sendto(probe(SID, seq), ("127.0.0.1", port))
                expect_ack(p, SID, seq, "steered peer")
        peers[0].sendto(b"punched flow payload", ("127.0.0.1", port))
        peers[1].sendto(probe(SID, 999, version=9), ("127.0.0.1", port))
        expect_silence(peers[1], "malformed steered probe")
        sess = wait_counter(ctl, SID.hex(), "data", 1)
        c = sess["counters"]
        if (c["probes"], c["acks"], c["bad"], c["data"]) != (seq, seq, 1, 1):
            fail(f"session counters {c}, want probes=acks={seq} bad=1 data=1")
        if sess["shard"] != shard or len(sess["punched"]) != len(peers):
            fail(f"session {sess}")
        if got:
            fail(f"the forward's upstream received {len(got)} steered datagrams")
        # A port not listed: normal lookup, the forward's group gets it.
        stranger = client()
        stranger.sendto(probe(SID, 5000), ("127.0.0.1", port))
        stranger.sendto(b"not punched", ("127.0.0.1", port))
        expect_silence(stranger, "unlisted port")
        for _ in range(50):
            if len(got) >= 2:
                break
            time.sleep(0.05)
        if sorted(got) != sorted([probe(SID, 5000), b"not punched"]):
            fail(f"upstream got {got}, want the unlisted port's 2 datagrams")
        c = counters(ctl, SID.hex())["counters"]
        if c["probes"] != seq or c["data"] != 1:
            fail(f"unlisted datagrams reached the session: {c}")
        pst = ctl.call("punch.ls")["punch"]
        steered = pst["counters"]["steered"]
        if steered < seq + 2 or pst["counters"]["no_flow"] < 2:
            fail(f"sk_lookup counters {pst['counters']}")
        # Shard check: per-shard UDP stats of the forward did not see steered datagrams;
        # the session's counters are only ever written by its owning shard (punch_eng.c).
        ctl.call("punch.close", sid=SID.hex())
        got.clear()
        peers[2].sendto(b"after close", ("127.0.0.1", port))
        for _ in range(50):
            if got:
                break
            time.sleep(0.05)
        if got != [b"after close"]:
            fail(f"after close the peer's datagram did not reach the forward: {got}")
        log(f"bpf: {seq} probes from {len(peers)} listed ports all ACKed by the session on "
            f"shard {shard}, none reached the forward; unlisted port and closed session go to "
            f"the forward; sk_lookup steered {steered}")
    finally:
        eng.terminate()
        eng.wait(timeout=10)


def main():
    mode = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="natx-pch-") as d:
        if mode == "none":
            case_none(d)
        else:
            case_bpf(d, sys.argv[2])


if __name__ == "__main__":
    main()
