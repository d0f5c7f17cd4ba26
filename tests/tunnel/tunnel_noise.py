#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tunnel's encrypted transport (Noise NK, docs/tunnel-protocol.md "Encrypted transport"),
end to end on loopback: a tunnel server engine with transport "noise" and a client engine that
pins the server's key, with every byte between them going through a recording tee proxy.

Asserts:
  * a TCP echo service and a UDP echo service work through the encrypted tunnel: 64 MiB each
    way with sha256 equal at both ends, UDP echoes from 8 client ports back to the right socket;
    40 concurrent visitors x 1 MiB echoed intact; a 2 MB/s bandwidth_kbps cap holds on an
    encrypted flow (4 MiB echo >= 1.5 s); a paid (L402) service authenticates with its
    macaroon inside Noise and its 3 MiB byte quota ends it during a 4 MiB echo (GOAWAY quota,
    encrypted flows reset and no longer counted);
  * the bytes on the wire are encrypted: a plaintext marker (sent through both services), the
    token, the paid service's macaroon and the service names never appear in the captured server<->client stream, and a
    plaintext tunnel captured the same way does show the marker and the name (so the detector
    works);
  * a client service pinned to another server key is refused (server log line + noise_key
    counter, client log line + noise_failures counter, state down), the other services keep
    working;
  * a plaintext client service against this noise-only server gets REFUSE noise_required
    (log lines on both sides, counter);
  * with python3-cryptography installed, an independent Python implementation of the NK
    handshake and transport (written from the Noise spec and docs/tunnel-protocol.md) completes
    HELLO/AUTH through the engine server, gets REFUSE noise_key in plaintext for a wrong pinned
    key, and a tampered transport message makes the server drop the connection;
  * the server's transport set again at run time: "both" serves a plaintext client service
    next to the encrypted ones, "plain" answers a new encrypted channel with REFUSE
    noise_unavailable (counter, client log line).

Exit 0 pass, 1 fail, 77 skipped. Ephemeral loopback ports; bounded loops; cleanup on exit.
"""
import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import engine_test as et  # noqa: E402
import tunnel_test as tt  # noqa: E402

MiB = 1 << 20
check = et.check
ok = tt.ok
svc = tt.svc
wait_for = tt.wait_for
TAG = os.urandom(6).hex()
TOKEN = "tn-token-" + os.urandom(8).hex()
MARKER = b"tn-plaintext-marker-" + TAG.encode()
ECHO, UECHO, BULK = "tn-echo-" + TAG, "tn-uecho-" + TAG, "tn-bulk-" + TAG


def log(msg):
    print(f"[tunnel_noise] {msg}", flush=True)


def read_log(engine):
    with open(engine.log_path, errors="replace") as f:
        return f.read()


# ---------------------------------------------------------------- recording tee proxy

class Scanner:
    """Looks for needles in a byte stream chunk by chunk (matches across chunk borders)."""

    def __init__(self, needles):
        self.needles = needles
        self.keep = max(len(n) for n in needles) - 1
        self.tail = b""
        self.found = set()
        self.total = 0

    def feed(self, data):
        buf = self.tail + data
        for n in self.needles:
            if n in buf:
                self.found.add(n)
        self.tail = buf[-self.keep:]
        self.total += len(data)


class Tee:
    """TCP proxy 127.0.0.1:port -> upstream that scans both directions of every connection."""

    def __init__(self, upstream_port, needles):
        self.up = upstream_port
        self.needles = needles
        self.lock = threading.Lock()
        self.scanners = []
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(256)
        self.port = self.ls.getsockname()[1]
        et.cleanups.append(self.ls.close)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.up), timeout=5)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            for a, b in ((c, u), (u, c)):
                sc = Scanner(self.needles)
                with self.lock:
                    self.scanners.append(sc)
                threading.Thread(target=self.pump, args=(a, b, sc), daemon=True).start()

    @staticmethod
    def pump(a, b, sc):
        try:
            while True:
                d = a.recv(1 << 20)
                if not d:
                    b.shutdown(socket.SHUT_WR)
                    return
                sc.feed(d)
                b.sendall(d)
        except OSError:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def found(self):
        with self.lock:
            return set().union(*[s.found for s in self.scanners]) if self.scanners else set()

    def total(self):
        with self.lock:
            return sum(s.total for s in self.scanners)


# ---------------------------------------------------------------- independent Noise NK

try:
    from cryptography.hazmat.primitives.asymmetric.x25519 import (X25519PrivateKey,
                                                                  X25519PublicKey)
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    HAVE_CRYPTO = True
except ImportError:
    HAVE_CRYPTO = False


def raw_pub(priv):
    """The 32 raw public-key bytes (python3-cryptography >= 2.5; no public_bytes_raw)."""
    return priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def hkdf2(ck, ikm):
    tk = hmac.new(ck, ikm, hashlib.sha256).digest()
    o1 = hmac.new(tk, b"\x01", hashlib.sha256).digest()
    return o1, hmac.new(tk, o1 + b"\x02", hashlib.sha256).digest()


def nonce(n):
    return b"\0" * 4 + n.to_bytes(8, "little")


class PyNK:
    """Noise_NK_25519_ChaChaPoly_SHA256 initiator, from the Noise spec (rev 34) alone."""

    def __init__(self, server_pub):
        self.h = b"Noise_NK_25519_ChaChaPoly_SHA256"
        self.ck = self.h
        self.k, self.n = None, 0
        self.mix_hash(b"natx-tun noise/1" + bytes([1, 1]))  # prologue: label, tver, pattern
        self.rs = server_pub
        self.mix_hash(server_pub)  # pre-message <- s
        self.e = X25519PrivateKey.generate()

    def mix_hash(self, d):
        self.h = hashlib.sha256(self.h + d).digest()

    def mix_key(self, ikm):
        self.ck, self.k = hkdf2(self.ck, ikm)
        self.n = 0

    def msg1(self):
        epub = raw_pub(self.e)
        self.mix_hash(epub)
        self.mix_key(self.e.exchange(X25519PublicKey.from_public_bytes(self.rs)))  # es
        ct = ChaCha20Poly1305(self.k).encrypt(nonce(self.n), b"", self.h)
        self.n += 1
        self.mix_hash(ct)
        return epub + ct

    def read_msg2(self, m):
        re_ = m[:32]
        self.mix_hash(re_)
        self.mix_key(self.e.exchange(X25519PublicKey.from_public_bytes(re_)))  # ee
        pt = ChaCha20Poly1305(self.k).decrypt(nonce(self.n), m[32:], self.h)
        self.mix_hash(m[32:])
        check(pt == b"", "message 2 payload not empty")
        k1, k2 = hkdf2(self.ck, b"")
        return k1, k2  # initiator sends with k1, receives with k2


class NoiseSock:
    """A socket speaking the tunnel's Noise transport (u16 length || ciphertext || tag)."""

    def __init__(self, s, ktx, krx):
        self.s, self.tx, self.rx = s, ChaCha20Poly1305(ktx), ChaCha20Poly1305(krx)
        self.ntx = self.nrx = 0
        self.buf = b""

    def seal(self, data):
        ct = self.tx.encrypt(nonce(self.ntx), data, b"")
        self.ntx += 1
        return struct.pack(">H", len(ct)) + ct

    def sendall(self, data):
        for i in range(0, max(len(data), 1), 65519):
            self.s.sendall(self.seal(data[i:i + 65519]))

    def _exact(self, n):
        d = b""
        while len(d) < n:
            x = self.s.recv(n - len(d))
            if not x:
                raise EOFError("closed")
            d += x
        return d

    def recv(self, n):
        while not self.buf:
            ln, = struct.unpack(">H", self._exact(2))
            self.buf = self.rx.decrypt(nonce(self.nrx), self._exact(ln), b"")
            self.nrx += 1
        d, self.buf = self.buf[:n], self.buf[n:]
        return d


def noise_frame(msg):
    return tt.frame(0x08, bytes([1, 1, 0, 0]) + msg)


def py_nk_connect(port, server_pub):
    """Handshake with the engine; returns (NoiseSock, None) or (socket, (type, payload))."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    nk = PyNK(server_pub)
    s.sendall(noise_frame(nk.msg1()))
    t, p = tt.read_frame(s)
    if t != 0x08:
        return s, (t, p)
    check(p[:4] == bytes([1, 1, 0, 0]) and len(p) == 52, f"NOISE answer {p.hex()}")
    k1, k2 = nk.read_msg2(p[4:])
    return NoiseSock(s, k1, k2), None


def t_independent(port, server_pub, srv):
    if not HAVE_CRYPTO:
        log("python3-cryptography missing: the independent NK checks are skipped")
        return
    name = "tn-indep-" + TAG
    ok(srv.call("tunnel.add", role="server", name=name, type="tcp", token=TOKEN,
                bind="127.0.0.1:0"))
    ns, refused = py_nk_connect(port, server_pub)
    check(refused is None, f"independent NK refused: {refused}")
    ns.sendall(tt.frame(tt.T_HELLO, b"NTUN" + bytes([1, 1, 1, 0])))
    t, p = tt.read_frame(ns)
    check(t == tt.T_CHALLENGE and len(p) == 34, f"challenge over Noise: {t}")
    ver, nsrv = p[0], p[2:]
    nc = os.urandom(32)
    nm = name.encode()
    signed = bytes([1, len(nm)]) + nm + struct.pack(">H", 0) + nc
    ns.sendall(tt.frame(tt.T_AUTH, signed + tt.mac(TOKEN.encode(), b"natx-tun/1 ctl-client",
                                                   bytes([ver]), nsrv, signed)))
    t, p = tt.read_frame(ns)
    check(t == tt.T_AUTH_OK, f"AUTH over Noise answered {t}")
    check(p[20:52] == tt.mac(TOKEN.encode(), b"natx-tun/1 ctl-server", bytes([ver]), nsrv, nc,
                             p[:20]), "server proof over Noise wrong")
    wait_for("independent client's service up", lambda: svc(srv, name, "server")["state"] == "up")
    # A tampered transport message: the server must drop the connection.
    bad = bytearray(ns.seal(tt.frame(0x10, struct.pack(">I", 7))))
    bad[5] ^= 0x40
    ns.s.sendall(bytes(bad))
    ns.s.settimeout(5)
    closed = False
    try:
        for _ in range(1000):  # CREATE_DATA requests may still be in flight: read to the end
            if ns.s.recv(65536) == b"":
                closed = True
                break
    except ConnectionResetError:
        closed = True
    check(closed, "a tampered message did not close the channel")
    wait_for("independent service down after tampering",
             lambda: svc(srv, name, "server")["state"] == "down", timeout=10)
    ns.s.close()
    # A wrong pinned key: REFUSE noise_key (16), in plaintext.
    wrong = raw_pub(X25519PrivateKey.generate())
    s, refused = py_nk_connect(port, wrong)
    s.close()
    check(refused is not None and refused[0] == tt.T_REFUSE and refused[1][0] == 16,
          f"wrong pinned key answered {refused}")
    # A plaintext HELLO: REFUSE noise_required (14).
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(tt.frame(tt.T_HELLO, b"NTUN" + bytes([1, 1, 1, 0])))
    t, p = tt.read_frame(s)
    s.close()
    check(t == tt.T_REFUSE and p[0] == 14, f"plaintext HELLO answered {t} {p.hex()}")
    ok(srv.call("tunnel.rm", role="server", name=name))
    log("independent NK: handshake + AUTH ok, tampering closes, wrong key / plaintext refused")


# ---------------------------------------------------------------- the case

def bulk(srv, cli, pinned, total):
    """64 MiB each way through service BULK, sha256 at both ends."""
    sink = et.server_socket()
    got = {}

    def sink_handler(c):
        with c:
            h = hashlib.sha256()
            got["up_n"] = et.recv_all(c, hasher=h)
            got["up"] = h.hexdigest()
            h = hashlib.sha256()
            for b in et.chunks(2, total):
                h.update(b)
                c.sendall(b)
            got["down_sent"] = h.hexdigest()
    et.serve(sink, sink_handler, count=1)
    r = ok(srv.call("tunnel.add", role="server", name=BULK, type="tcp", token=TOKEN,
                    bind="127.0.0.1:0"))
    ok(cli.call("tunnel.add", role="client", name=BULK, type="tcp", token=TOKEN,
                local=f"127.0.0.1:{sink.getsockname()[1]}", transport="noise",
                server_pubkey=pinned))
    wait_for("bulk pool", lambda: svc(srv, BULK, "server")["pool"] > 0)
    s = et.connect(tt.port_of(r["service"]["addr"]), timeout=120)
    h = hashlib.sha256()
    t0 = time.time()
    for b in et.chunks(1, total):
        h.update(b)
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
    sent_up = h.hexdigest()
    h = hashlib.sha256()
    n = et.recv_all(s, hasher=h)
    dt = time.time() - t0
    s.close()
    wait_for("sink done", lambda: "down_sent" in got, timeout=60)
    check(got["up_n"] == total and got["up"] == sent_up,
          f"visitor->service corrupted: {got.get('up_n')} bytes")
    check(n == total and h.hexdigest() == got["down_sent"],
          f"service->visitor corrupted: {n} bytes")
    log(f"bulk: {total >> 20} MiB each way in {dt:.1f} s through the tee proxy (not asserted)")
    b = wait_for("bulk flow closed", lambda: (lambda x: x if x["flows_open"] == 0 else None)(
        svc(srv, BULK, "server")))
    check(b["bytes"] >= 2 * total, f"byte counter {b['bytes']}")
    check(b["flows_total"] >= 1, "the encrypted flow was not counted")


def udp_echoes(pub, nsocks=8, rounds=3):
    socks = []
    for _ in range(nsocks):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        et.cleanups.append(s.close)
        socks.append(s)
    for rnd in range(rounds):
        for i, s in enumerate(socks):
            want = MARKER + f":{i}:{rnd}:{s.getsockname()[1]}:".encode() + os.urandom(16)
            for _ in range(6):
                s.sendto(want, ("127.0.0.1", pub))
                try:
                    d, a = s.recvfrom(65535)
                except socket.timeout:
                    continue
                check(a == ("127.0.0.1", pub), f"UDP reply from {a}")
                check(d == want, f"socket {i} got another visitor's reply")
                break
            else:
                raise AssertionError(f"UDP socket {i} round {rnd}: no reply")
    big = MARKER + os.urandom(60000)
    socks[0].sendto(big, ("127.0.0.1", pub))
    socks[0].settimeout(3)
    d, _ = socks[0].recvfrom(65535)
    check(d == big, f"60020-byte datagram came back as {len(d)} bytes")


def plaintext_control(needles):
    """The same tee around a plaintext tunnel: the marker and the name must be seen."""
    srv = et.Engine(["--shards", "1"])
    listen = ok(srv.call("tunnel.server", listen="127.0.0.1:0"))["listen"]
    tee = Tee(tt.port_of(listen), needles)
    cli = et.Engine(["--shards", "1"])
    ok(cli.call("tunnel.client", server=f"127.0.0.1:{tee.port}", backoff_base_ms=100,
                backoff_cap_ms=1000))
    r = ok(srv.call("tunnel.add", role="server", name=ECHO, type="tcp", token=TOKEN,
                    bind="127.0.0.1:0"))
    ok(cli.call("tunnel.add", role="client", name=ECHO, type="tcp", token=TOKEN,
                local=f"127.0.0.1:{tt.echo_server()}"))
    wait_for("plaintext echo pool", lambda: svc(srv, ECHO, "server")["pool"] > 0)
    payload = MARKER * 50
    check(tt.echo_roundtrip(tt.port_of(r["service"]["addr"]), payload) == payload,
          "plaintext echo")
    wait_for("tee saw the marker", lambda: MARKER in tee.found(), timeout=5)
    check(ECHO.encode() in tee.found(), "tee did not see the service name of a plaintext AUTH")
    srv.kill()
    cli.kill()
    log("control: a plaintext tunnel shows the marker and the service name on the wire")


def paid_quota(srv, cli, pub, pre, mac):
    """A paid (L402) service over the encrypted transport: kind-2 AUTH inside Noise, the byte
    quota counts encrypted flows and ends them (GOAWAY quota, flows reset and uncounted)."""
    phash = hashlib.sha256(pre).digest()
    r = ok(srv.call("tunnel.add", role="server", name="tn-paid", type="tcp", key_hex=pre.hex(),
                    bind="127.0.0.1:0", bandwidth_kbps=16000,  # 2 MB/s: the echo outlasts a tick
                    l402={"payment_hash": phash.hex(), "expires_at": int(time.time()) + 600,
                          "max_bytes": 3 * MiB}))
    ppub = tt.port_of(r["service"]["addr"])
    ok(cli.call("tunnel.add", role="client", name="tn-paid", type="tcp", key_hex=pre.hex(),
                macaroon_hex=mac.hex(), local=f"127.0.0.1:{tt.echo_server()}",
                transport="noise", server_pubkey=pub.hex()))
    wait_for("paid pool", lambda: svc(srv, "tn-paid", "server")["pool"] > 0)
    small = os.urandom(256 * 1024)
    check(tt.echo_roundtrip(ppub, small) == small, "echo through the encrypted paid service")
    big = os.urandom(4 * MiB)
    try:
        got = tt.echo_roundtrip(ppub, big, timeout=20)
    except OSError:
        got = None  # reset when the quota runs out mid-transfer
    check(got != big, "the quota did not cut the encrypted flow")
    wait_for("quota ends the paid service", lambda: svc(srv, "tn-paid", "server").get(
        "l402", {}).get("ended") == "quota", timeout=10)
    x = wait_for("paid flows reset", lambda: (lambda y: y if y["flows_open"] == 0 else None)(
        svc(srv, "tn-paid", "server")))
    check(x["state"] == "down" and x["bytes"] >= 3 * MiB, f"after the quota: {x}")
    check(re.search(r"service tn-paid: paid access ended \(quota\)", read_log(srv)),
          "quota log line")
    wait_for("client told", lambda: re.search(r"service tn-paid: server sent GOAWAY \(quota\)",
                                              read_log(cli)), timeout=5)
    ok(cli.call("tunnel.rm", role="client", name="tn-paid"))
    log("paid service over Noise: macaroon AUTH encrypted, 3 MiB quota ends the encrypted flows")


def main_case():
    pre = os.urandom(32)
    mac = tt.macaroon_v2(hashlib.sha256(pre).digest())
    needles = [MARKER, TOKEN.encode(), ECHO.encode(), UECHO.encode(), BULK.encode(), mac]
    plaintext_control(needles)

    key = os.urandom(32)
    srv = et.Engine(["--shards", "1"])
    r = ok(srv.call("tunnel.server", listen="127.0.0.1:0", heartbeat_interval=1,
                    heartbeat_timeout=3, transport="noise", noise_key_hex=key.hex(),
                    udp_idle_ms=5000))
    check(r["transport"] == "noise" and re.fullmatch(r"[0-9a-f]{64}", r["noise_pubkey"]),
          f"tunnel.server reply {r}")
    check(key.hex() not in str(r) and key.hex() not in str(ok(srv.call("tunnel.ls"))),
          "the private key is shown")
    pub = bytes.fromhex(r["noise_pubkey"])
    if HAVE_CRYPTO:
        check(raw_pub(X25519PrivateKey.from_private_bytes(key)) == pub,
              "noise_pubkey is not the X25519 public key of noise_key_hex")
    listen = r["listen"]
    tee = Tee(tt.port_of(listen), needles)
    cli = et.Engine(["--shards", "1"])
    ok(cli.call("tunnel.client", server=f"127.0.0.1:{tee.port}", backoff_base_ms=100,
                backoff_cap_ms=1000, udp_idle_ms=5000))

    # TCP echo (key pinned as hex) and UDP echo (key pinned as base64).
    r = ok(srv.call("tunnel.add", role="server", name=ECHO, type="tcp", token=TOKEN,
                    bind="127.0.0.1:0"))
    echo_pub = tt.port_of(r["service"]["addr"])
    ok(cli.call("tunnel.add", role="client", name=ECHO, type="tcp", token=TOKEN,
                local=f"127.0.0.1:{tt.echo_server()}", transport="noise",
                server_pubkey=pub.hex()))
    r = ok(srv.call("tunnel.add", role="server", name=UECHO, type="udp", token=TOKEN,
                    bind="127.0.0.1:0", udp_channels=2))
    uecho_pub = tt.port_of(r["service"]["addr"])
    ok(cli.call("tunnel.add", role="client", name=UECHO, type="udp", token=TOKEN,
                local=f"127.0.0.1:{tt.udp_echo_server()}", transport="noise",
                server_pubkey=base64.b64encode(pub).decode()))
    wait_for("echo up", lambda: svc(srv, ECHO, "server")["pool"] > 0)
    wait_for("uecho channels", lambda: svc(srv, UECHO, "server")["data_channels"] >= 2)
    c = svc(cli, ECHO, "client")
    check(c["transport"] == "noise" and c["server_pubkey"] == pub.hex(), f"client ls {c}")

    payload = MARKER * 200 + os.urandom(1000)
    check(tt.echo_roundtrip(echo_pub, payload) == payload, "encrypted TCP echo")
    udp_echoes(uecho_pub)
    bulk(srv, cli, pub.hex(), 64 * MiB)
    # 40 encrypted flows at once, 1 MiB each, every echo sha256-checked
    errors = []

    def one(i):
        try:
            data = os.urandom(MiB)
            got = tt.echo_roundtrip(echo_pub, data, timeout=60)
            if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
                errors.append(f"visitor {i}: {len(got)} bytes, digest differs")
        except Exception as e:  # noqa: BLE001
            errors.append(f"visitor {i}: {e}")
    ths = [threading.Thread(target=one, args=(i,)) for i in range(40)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(90)
    check(not errors and not any(th.is_alive() for th in ths), f"concurrent: {errors[:3]}")
    e = wait_for("echo flows closed", lambda: (lambda x: x if x["flows_open"] == 0 else None)(
        svc(srv, ECHO, "server")))
    check(e["flows_total"] >= 41, f"echo flows_total {e['flows_total']}")
    log("40 concurrent encrypted visitors x 1 MiB: all intact")

    # bandwidth_kbps applies to encrypted flows too (kernel pacing of both sockets):
    # 2 MB/s each way, a 4 MiB echo needs about 2 s (lower bound only).
    r = ok(srv.call("tunnel.add", role="server", name="tn-bw", type="tcp", token=TOKEN,
                    bind="127.0.0.1:0", bandwidth_kbps=16000))
    ok(cli.call("tunnel.add", role="client", name="tn-bw", type="tcp", token=TOKEN,
                local=f"127.0.0.1:{tt.echo_server()}", transport="noise",
                server_pubkey=pub.hex()))
    wait_for("bw pool", lambda: svc(srv, "tn-bw", "server")["pool"] > 0)
    payload = os.urandom(4 * MiB)
    t0 = time.time()
    check(tt.echo_roundtrip(tt.port_of(r["service"]["addr"]), payload, timeout=60) == payload,
          "capped encrypted echo")
    dt = time.time() - t0
    check(dt >= 1.5, f"a 4 MiB echo under a 2 MB/s cap took only {dt:.2f} s")
    log(f"bandwidth cap: 4 MiB echo in {dt:.2f} s at 2 MB/s")
    ls = ok(srv.call("tunnel.ls"))["server"]
    check(ls["noise_ok"] >= 6 and ls["handshakes_failed"] == 0, f"server counters {ls}")

    paid_quota(srv, cli, pub, pre, mac)

    # Nothing readable crossed the tee.
    time.sleep(0.3)
    seen = tee.found()
    check(tee.total() >= 2 * 64 * MiB, f"tee saw only {tee.total()} bytes")
    check(not seen, f"plaintext on the wire of the encrypted tunnel: {seen}")
    log(f"wire: {tee.total() >> 20} MiB captured, no marker, token or service name")

    # A client pinned to another key: refused, counted, logged; the others keep working.
    ok(srv.call("tunnel.add", role="server", name="tn-wrongkey", type="tcp", token=TOKEN,
                bind="127.0.0.1:0"))
    ok(cli.call("tunnel.add", role="client", name="tn-wrongkey", type="tcp", token=TOKEN,
                local="127.0.0.1:9", transport="noise", server_pubkey=os.urandom(32).hex()))
    wait_for("noise_key refusal counted",
             lambda: ok(srv.call("tunnel.ls"))["server"]["noise_key_refused"] >= 2)
    wait_for("client noise_failures",
             lambda: svc(cli, "tn-wrongkey", "client")["noise_failures"] >= 2)
    check(svc(srv, "tn-wrongkey", "server")["state"] == "down", "wrong-key service came up")
    check(svc(cli, "tn-wrongkey", "client")["state"] == "down", "wrong-key client is up")
    check(re.search(r"refused encrypted channel from 127\.0\.0\.1:\d+: noise_key "
                    r"\(the client pinned another server key", read_log(srv)),
          "no server log line for the wrong pinned key")
    check(re.search(r"service tn-wrongkey: server \S+ refused the encrypted control channel: "
                    r"noise_key", read_log(cli)), "no client log line for the wrong pinned key")
    payload = os.urandom(200000)
    check(tt.echo_roundtrip(echo_pub, payload) == payload, "echo during the wrong-key retries")
    udp_echoes(uecho_pub, nsocks=2, rounds=1)
    # Backoff: retries are spaced (base 100 ms, cap 1 s): at most ~1 per 100 ms over 2 s.
    n0 = svc(cli, "tn-wrongkey", "client")["noise_failures"]
    time.sleep(2)
    n1 = svc(cli, "tn-wrongkey", "client")["noise_failures"]
    check(n1 - n0 <= 20, f"{n1 - n0} wrong-key attempts in 2 s: no backoff")
    ok(cli.call("tunnel.rm", role="client", name="tn-wrongkey"))

    # A plaintext client service against this noise-only server: REFUSE noise_required.
    ok(srv.call("tunnel.add", role="server", name="tn-plain", type="tcp", token=TOKEN,
                bind="127.0.0.1:0"))
    ok(cli.call("tunnel.add", role="client", name="tn-plain", type="tcp", token=TOKEN,
                local="127.0.0.1:9"))
    wait_for("noise_required counted",
             lambda: ok(srv.call("tunnel.ls"))["server"]["noise_required_refused"] >= 1)
    wait_for("client log: noise_required", lambda: re.search(
        r"service tn-plain: server \S+ refused the control channel: noise_required",
        read_log(cli)))
    check(re.search(r"refused plaintext channel from 127\.0\.0\.1:\d+: noise_required "
                    r"\(this server accepts only the encrypted transport", read_log(srv)),
          "no server log line for the plaintext client")
    check(svc(srv, "tn-plain", "server")["state"] == "down", "plaintext client got in")
    ok(cli.call("tunnel.rm", role="client", name="tn-plain"))
    check(tt.echo_roundtrip(echo_pub, b"still here") == b"still here", "echo after refusals")

    t_independent(tt.port_of(listen), pub, srv)
    check(tt.echo_roundtrip(echo_pub, b"still here") == b"still here", "echo at the end")

    # transport "both" (set again on the running server): a plaintext client service comes
    # up next to the encrypted ones
    r = ok(srv.call("tunnel.server", listen=listen, transport="both"))
    check(r["transport"] == "both" and r["noise_pubkey"] == pub.hex(), f"re-set: {r}")
    r = ok(srv.call("tunnel.add", role="server", name="tn-plain2", type="tcp", token=TOKEN,
                    bind="127.0.0.1:0"))
    ok(cli.call("tunnel.add", role="client", name="tn-plain2", type="tcp", token=TOKEN,
                local=f"127.0.0.1:{tt.echo_server()}"))
    wait_for("plaintext service up on 'both'", lambda: svc(srv, "tn-plain2", "server")["pool"] > 0)
    payload = MARKER * 10
    check(tt.echo_roundtrip(tt.port_of(r["service"]["addr"]), payload) == payload,
          "plaintext echo on a 'both' server")
    wait_for("tee saw the plaintext service's marker", lambda: MARKER in tee.found(), timeout=5)
    check(tt.echo_roundtrip(echo_pub, b"both") == b"both", "encrypted echo on 'both'")
    # transport "plain": a new encrypted channel gets REFUSE noise_unavailable
    ok(srv.call("tunnel.server", listen=listen, transport="plain"))
    ok(srv.call("tunnel.add", role="server", name="tn-late", type="tcp", token=TOKEN,
                bind="127.0.0.1:0"))
    ok(cli.call("tunnel.add", role="client", name="tn-late", type="tcp", token=TOKEN,
                local="127.0.0.1:9", transport="noise", server_pubkey=pub.hex()))
    wait_for("noise_unavailable counted",
             lambda: ok(srv.call("tunnel.ls"))["server"]["noise_unavailable_refused"] >= 1)
    wait_for("client log: noise_unavailable", lambda: re.search(
        r"service tn-late: server \S+ refused the encrypted control channel: "
        r"noise_unavailable", read_log(cli)))
    log("transport both: plaintext and encrypted side by side; plain: noise_unavailable")


def main():
    if not os.path.exists(et.ENGINE):
        print(f"skipped: no engine at {et.ENGINE}")
        return et.SKIP
    rc = 0
    try:
        main_case()
        log("ok")
    except Exception:  # noqa: BLE001
        et.failed.append(1)
        import traceback
        traceback.print_exc()
        rc = 1
    finally:
        for c in reversed(et.cleanups):
            try:
                c()
            except Exception:  # noqa: BLE001
                pass
    return rc


if __name__ == "__main__":
    sys.exit(main())
