#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tunnel data plane integration tests (loopback): one natx-engine as tunnel server (relay),
another as tunnel client (node), driven over their control sockets (tunnel.* commands).

Each case is one t_<name> function; tests/integration/tunnel_<name>.sh runs
`python3 tunnel_test.py <name>`. Exit status 0 pass, 1 fail, 77 skipped. Engines, echo
servers and visitors use ephemeral loopback ports; loops are bounded in count and time;
everything started here is stopped on exit. A small independent implementation of the
handshake (docs/tunnel-protocol.md) is used to replay recorded handshakes.
"""
import hashlib
import hmac
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_test as et  # noqa: E402  (Engine process wrapper, echo servers)

MiB = 1 << 20
TOKEN = "tdp-" + os.urandom(8).hex()


def log(msg):
    print(f"[tunnel_test] {msg}", flush=True)


check = et.check


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def ok(rep):
    check(rep.get("ok"), f"ctl failed: {rep}")
    return rep


def wait_for(what, fn, timeout=15.0, step=0.05):
    """Poll fn() until truthy (returned) or raise after @timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def svc(engine, name, role):
    for s in ok(engine.call("tunnel.ls"))["services"]:
        if s["name"] == name and s["role"] == role:
            return s
    return None


class Pair:
    """A tunnel server engine and a tunnel client engine on loopback."""

    def __init__(self, srv_args=None, cli_args=None, server_listen="127.0.0.1:0", **srv_kw):
        self.srv = et.Engine(["--shards", "1"] + (srv_args or []))
        kw = dict(heartbeat_interval=1, heartbeat_timeout=3)
        kw.update(srv_kw)
        self.listen = ok(self.srv.call("tunnel.server", listen=server_listen, **kw))["listen"]
        self.cli = et.Engine(["--shards", "1"] + (cli_args or []))
        ok(self.cli.call("tunnel.client", server=self.listen, backoff_base_ms=100,
                         backoff_cap_ms=1000))

    def expose(self, name, local_port, typ="tcp", bind="127.0.0.1:0", token=TOKEN,
               client_token=None, srv_kw=None, cli_kw=None, wait=True):
        """Add @name on both ends; returns the public port."""
        r = ok(self.srv.call("tunnel.add", role="server", name=name, type=typ, token=token,
                             bind=bind, **(srv_kw or {})))
        pub = port_of(r["service"]["addr"])
        ok(self.cli.call("tunnel.add", role="client", name=name, type=typ,
                         token=client_token or token, local=f"127.0.0.1:{local_port}",
                         **(cli_kw or {})))
        if wait:
            wait_for(f"service {name} up", lambda: svc(self.srv, name, "server")["state"] == "up")
            if typ == "tcp":
                wait_for(f"service {name} pool", lambda: svc(self.srv, name, "server")["pool"] > 0)
        return pub


def echo_server():
    up = et.server_socket()
    et.serve(up, et.echo_handler)
    return up.getsockname()[1]


def echo_roundtrip(port, payload, timeout=20):
    s = et.connect(port, timeout=timeout)
    with s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += d
    return got


# ---------------------------------------------------------------- protocol (independent)

T_HELLO, T_CHALLENGE, T_AUTH, T_AUTH_OK, T_DATA_AUTH, T_DATA_OK, T_REFUSE = 1, 2, 3, 4, 5, 6, 7
T_CREATE_DATA = 0x12


def frame(t, payload):
    return struct.pack(">BBH", t, 0, len(payload)) + payload


def read_frame(s):
    hdr = b""
    while len(hdr) < 4:
        d = s.recv(4 - len(hdr))
        if not d:
            raise EOFError("closed")
        hdr += d
    t, _, n = struct.unpack(">BBH", hdr)
    p = b""
    while len(p) < n:
        d = s.recv(n - len(p))
        if not d:
            raise EOFError("closed")
        p += d
    return t, p


def mac(key, *parts):
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


class PyClient:
    """Control channel of a hand-written client: records what it sent, for replays."""

    def __init__(self, addr, service, token):
        self.addr, self.service = addr, service.encode()
        self.key = token if isinstance(token, bytes) else token.encode()

    def hello(self, chan):
        s = socket.create_connection(("127.0.0.1", port_of(self.addr)), timeout=10)
        s.sendall(frame(T_HELLO, b"NTUN" + bytes([1, 1, chan, 0])))
        t, p = read_frame(s)
        check(t == T_CHALLENGE and len(p) == 34, f"bad challenge {t} {p!r}")
        return s, p[0], p[2:]

    def control(self, replay_auth=None, kind=1, cred=b""):
        """Returns (socket, reply type, reply payload, auth frame sent)."""
        s, ver, ns = self.hello(1)
        if replay_auth is None:
            nc = os.urandom(32)
            signed = (bytes([kind, len(self.service)]) + self.service +
                      struct.pack(">H", len(cred)) + cred + nc)
            auth = frame(T_AUTH, signed + mac(self.key, b"natx-tun/1 ctl-client", bytes([ver]),
                                               ns, signed))
            self.nc, self.ns, self.ver = nc, ns, ver
        else:
            auth = replay_auth
        s.sendall(auth)
        t, p = read_frame(s)
        if t == T_AUTH_OK and replay_auth is None:
            self.sid = p[:16]
            check(p[20:52] == mac(self.key, b"natx-tun/1 ctl-server", bytes([ver]), ns,
                                  self.nc, p[:20]), "server proof wrong")
            self.skey = mac(self.key, b"natx-tun/1 session", ns, self.nc)
        return s, t, p, auth

    def data(self, nonce_ch):
        s, ver, ns = self.hello(2)
        m = mac(self.skey, b"natx-tun/1 data-client", bytes([ver]), ns, self.sid, nonce_ch)
        s.sendall(frame(T_DATA_AUTH, self.sid + nonce_ch + m))
        try:
            t, p = read_frame(s)
        except (EOFError, OSError):
            t, p = None, b""
        if t == T_DATA_OK:
            check(p == mac(self.skey, b"natx-tun/1 data-server", bytes([ver]), ns, nonce_ch),
                  "server's data-channel proof wrong")
        return s, t, p


# ---------------------------------------------------------------- cases

def t_tcp():
    """Echo through the tunnel; 1 GiB visitor->service and 256 MiB back, sha256 both ends."""
    p = Pair()
    pub = p.expose("echo", echo_server())
    check(echo_roundtrip(pub, b"hello tunnel") == b"hello tunnel", "small echo")

    total_up = int(os.environ.get("TUNNEL_BULK_MIB", "1024")) * MiB
    total_down = 256 * MiB
    sink = et.server_socket()
    got = {}

    def sink_handler(c):
        with c:
            h = hashlib.sha256()
            got["up_n"] = et.recv_all(c, hasher=h)
            got["up"] = h.hexdigest()
            h = hashlib.sha256()
            for b in et.chunks(2, total_down):
                h.update(b)
                c.sendall(b)
            got["down_sent"] = h.hexdigest()
    et.serve(sink, sink_handler, count=1)
    ok(p.srv.call("tunnel.add", role="server", name="bulk", type="tcp", token=TOKEN,
                  bind="127.0.0.1:0"))
    ok(p.cli.call("tunnel.add", role="client", name="bulk", type="tcp", token=TOKEN,
                  local=f"127.0.0.1:{sink.getsockname()[1]}"))
    wait_for("bulk up", lambda: svc(p.srv, "bulk", "server")["pool"] > 0)
    bpub = port_of(svc(p.srv, "bulk", "server")["bind"])
    s = et.connect(bpub, timeout=120)
    h = hashlib.sha256()
    t0 = time.time()
    for b in et.chunks(1, total_up):
        h.update(b)
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
    sent_up = h.hexdigest()
    h = hashlib.sha256()
    n = et.recv_all(s, hasher=h)
    dt = time.time() - t0
    s.close()
    wait_for("sink done", lambda: "down_sent" in got, timeout=60)
    check(got["up_n"] == total_up and got["up"] == sent_up,
          f"visitor->service corrupted: {got.get('up_n')} bytes")
    check(n == total_down and h.hexdigest() == got["down_sent"], "service->visitor corrupted")
    log(f"bulk: {total_up >> 20} MiB up + {total_down >> 20} MiB down in {dt:.1f} s "
        f"({(total_up + total_down) * 8 / dt / 1e9:.2f} Gbit/s, not asserted)")
    b = wait_for("bulk flow closed", lambda: (lambda s: s if s["flows_open"] == 0 else None)(
        svc(p.srv, "bulk", "server")))
    check(b["bytes"] >= total_up + total_down, f"byte counter {b['bytes']}")


def t_concurrent():
    """100 visitors at once, each 1 MiB echoed, each checked by sha256; engines in splice
    mode, then in uring mode."""
    for mode in ("splice", "uring"):
        concurrent(mode)


def concurrent(mode):
    p = Pair(srv_args=["--tcp-mode", mode], cli_args=["--tcp-mode", mode])
    pub = p.expose("echo", echo_server(), srv_kw={"pool": 8})
    errors = []

    def one(i):
        try:
            data = random.Random(i).randbytes(MiB)
            back = echo_roundtrip(pub, data, timeout=60)
            if hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
                errors.append(f"visitor {i}: {len(back)} bytes, digest differs")
        except Exception as e:  # noqa: BLE001
            errors.append(f"visitor {i}: {e!r}")
    th = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for x in th:
        x.start()
    for x in th:
        x.join(120)
    check(not errors, f"{len(errors)} visitors failed: {errors[:5]}")
    s = wait_for("flows closed", lambda: (lambda s: s if s["flows_open"] == 0 else None)(
        svc(p.srv, "echo", "server")))
    check(s["flows_total"] == 100 and s["visitors"] == 100, f"counters {s}")
    log(f"concurrent ({mode}): 100 visitors x 1 MiB echoed intact")


def udp_echo_server():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    et.cleanups.append(u.close)

    def loop():
        while True:
            try:
                d, a = u.recvfrom(65535)
                u.sendto(d, a)
            except OSError:
                return
    threading.Thread(target=loop, daemon=True).start()
    return u.getsockname()[1]


def t_udp():
    """UDP echo from 50 visitor ports: every reply reaches the socket that asked."""
    p = Pair(udp_idle_ms=5000)
    ok(p.cli.call("tunnel.client", server=p.listen, udp_idle_ms=5000))
    pub = p.expose("uecho", udp_echo_server(), typ="udp", srv_kw={"udp_channels": 3})
    wait_for("3 UDP channels", lambda: svc(p.srv, "uecho", "server")["data_channels"] >= 3)
    socks = []
    for i in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        et.cleanups.append(s.close)
        socks.append(s)
    wrong = 0
    for rnd in range(4):
        for i, s in enumerate(socks):
            want = f"{i}:{rnd}:{s.getsockname()[1]}:".encode() + os.urandom(16)
            for attempt in range(6):
                s.sendto(want, ("127.0.0.1", pub))
                try:
                    d, a = s.recvfrom(65535)
                except socket.timeout:
                    continue
                check(a == ("127.0.0.1", pub), f"reply from {a}")
                if d != want:
                    wrong += 1
                    continue
                break
            else:
                raise AssertionError(f"socket {i} round {rnd}: no reply")
    check(wrong == 0, f"{wrong} replies went to the wrong visitor")
    big = os.urandom(60000)
    socks[0].sendto(big, ("127.0.0.1", pub))
    d, _ = socks[0].recvfrom(65535)
    check(d == big, f"60000-byte datagram came back as {len(d)} bytes")
    s = svc(p.srv, "uecho", "server")
    check(s["udp_sessions"] == 50, f"udp sessions {s['udp_sessions']}")
    log(f"udp: {s['udp_in']} in, {s['udp_out']} out, {s['udp_drops']} dropped, 50 sessions")
    wait_for("sessions idle-closed", lambda: svc(p.srv, "uecho", "server")["udp_sessions"] == 0,
             timeout=15)
    wait_for("client sessions idle-closed",
             lambda: svc(p.cli, "uecho", "client")["udp_sessions"] == 0, timeout=15)


def t_restart():
    """Server killed and restarted on the same ports: the client brings the service back."""
    p = Pair()
    echo = echo_server()
    pub = p.expose("echo", echo)
    check(echo_roundtrip(pub, b"before") == b"before", "echo before restart")
    listen = p.listen
    p.srv.proc.send_signal(signal.SIGKILL)
    p.srv.proc.wait()
    wait_for("client notices", lambda: svc(p.cli, "echo", "client")["state"] == "down",
             timeout=10)
    time.sleep(1.5)  # the client keeps retrying with backoff meanwhile
    srv = et.Engine(["--shards", "1"])
    ok(srv.call("tunnel.server", listen=listen, heartbeat_interval=1, heartbeat_timeout=3))
    ok(srv.call("tunnel.add", role="server", name="echo", type="tcp", token=TOKEN,
                bind=f"127.0.0.1:{pub}"))
    t0 = time.time()
    wait_for("service back", lambda: svc(srv, "echo", "server")["state"] == "up", timeout=10)
    back = time.time() - t0
    check(echo_roundtrip(pub, b"after") == b"after", "echo after restart")
    c = svc(p.cli, "echo", "client")
    check(c["reconnects"] >= 1 and c["control_ups"] >= 2, f"client counters {c}")
    log(f"restart: service back {back:.2f} s after the new server was configured "
        f"(client backoff cap 1 s)")


def t_auth():
    """Wrong credential and replayed handshakes are refused, logged and counted; another
    service keeps working."""
    p = Pair()
    pub = p.expose("echo", echo_server())
    # wrong token on the client side of another service
    ok(p.srv.call("tunnel.add", role="server", name="wrong", type="tcp", token=TOKEN,
                  bind="127.0.0.1:0"))
    ok(p.cli.call("tunnel.add", role="client", name="wrong", type="tcp", token="not-the-token",
                  local="127.0.0.1:9"))
    wait_for("auth failures counted",
             lambda: svc(p.srv, "wrong", "server")["auth_failures"] >= 2)
    check(svc(p.srv, "wrong", "server")["state"] == "down", "wrong token must not bring it up")
    check(re.search(r"refused control channel from 127\.0\.0\.1:\d+ for service wrong: auth",
                    p.srv.log()), "no log line for the wrong credential")
    ok(p.cli.call("tunnel.rm", role="client", name="wrong"))

    # a hand-written client for service "py"
    ok(p.srv.call("tunnel.add", role="server", name="py", type="tcp", token=TOKEN,
                  bind="127.0.0.1:0", pool=2))
    pc = PyClient(p.listen, "py", TOKEN)
    ctrl, t, _, auth = pc.control()
    check(t == T_AUTH_OK, f"python client refused: {t}")
    nonces = []
    while len(nonces) < 2:
        t, pl = read_frame(ctrl)
        if t == T_CREATE_DATA:
            nonces.append(pl)
    d1, t, pl = pc.data(nonces[0])
    check(t == T_DATA_OK, f"data channel refused: {t} {pl!r}")
    # replayed control AUTH on a new connection (new challenge): refused "auth"
    before = ok(p.srv.call("tunnel.ls"))["server"]
    s2, t, pl, _ = pc.control(replay_auth=auth)
    check(t == T_REFUSE and pl[0] == 3, f"replayed AUTH: got {t} {pl!r}")
    s2.close()
    # the same channel nonce again (correct MAC for the new challenge): refused "replay"
    d2, t, pl = pc.data(nonces[0])
    check(t == T_REFUSE and pl[0] == 9, f"replayed channel nonce: got {t} {pl!r}")
    d2.close()
    after = ok(p.srv.call("tunnel.ls"))["server"]
    check(after["auth_failures"] > before["auth_failures"], f"auth counter {before} {after}")
    check(after["replays"] == before["replays"] + 1, f"replay counter {before} {after}")
    check(svc(p.srv, "py", "server")["replays"] == 1, "per-service replay counter")
    logtxt = p.srv.log()
    check(re.search(r"refused data channel from 127\.0\.0\.1:\d+: replay", logtxt),
          "no log line for the replay")
    # still up: the Python session, and the engine client's service
    check(svc(p.srv, "py", "server")["state"] == "up", "python session dropped by a replay")
    check(echo_roundtrip(pub, b"still here") == b"still here", "other service broken")
    d1.close()
    ctrl.close()


def t_hot_rm():
    """Removing one service leaves another service's open flow and listener alive."""
    p = Pair()
    pub_a = p.expose("a", echo_server())
    pub_b = p.expose("b", echo_server())
    s = et.connect(pub_b)
    s.sendall(b"ping1")
    check(s.recv(100) == b"ping1", "b before rm")
    ok(p.srv.call("tunnel.rm", role="server", name="a"))
    ok(p.cli.call("tunnel.rm", role="client", name="a"))
    check(svc(p.srv, "a", "server") is None, "a still listed")
    s.sendall(b"ping2")
    check(s.recv(100) == b"ping2", "b's open flow broken by rm of a")
    s.close()
    check(echo_roundtrip(pub_b, b"new") == b"new", "new visitor of b")
    try:
        r = echo_roundtrip(pub_a, b"x", timeout=3)
        check(r == b"", f"a still answers: {r!r}")
    except OSError:
        pass
    # re-adding works (same name, new port)
    pub_a2 = p.expose("a", echo_server())
    check(echo_roundtrip(pub_a2, b"again") == b"again", "re-added a")


def t_limits():
    """max_conns refuses extra visitors; the pending-handshake caps refuse silent
    connections per address; PROXY v2 towards the local service carries the visitor."""
    p = Pair(pending_per_ip=4, pending_max=64, handshake_timeout_ms=2000)
    pub = p.expose("echo", echo_server(), srv_kw={"max_conns": 2})
    held = [et.connect(pub) for _ in range(2)]
    for h in held:
        h.sendall(b"x")
        check(h.recv(1) == b"x", "held visitor")
    extra = et.connect(pub, timeout=5)
    check(extra.recv(10) == b"", "third visitor should be closed (max_conns 2)")
    extra.close()
    check(svc(p.srv, "echo", "server")["refused_limit"] >= 1, "refused_limit counter")
    for h in held:
        h.close()
    wait_for("flows closed", lambda: svc(p.srv, "echo", "server")["flows_open"] == 0)
    check(echo_roundtrip(pub, b"ok") == b"ok", "after the limit")

    silent = []
    for _ in range(10):
        silent.append(socket.create_connection(("127.0.0.1", port_of(p.listen)), timeout=5))
    time.sleep(0.5)
    srv = ok(p.srv.call("tunnel.ls"))["server"]
    check(srv["pending_refused"] >= 6, f"per-address pending cap: {srv}")
    check(srv["pending"] <= 4, f"pending {srv['pending']}")
    check(echo_roundtrip(pub, b"during") == b"during", "flows during a handshake flood")
    wait_for("handshake timeouts", lambda: ok(p.srv.call("tunnel.ls"))["server"]
             ["handshake_timeouts"] >= 4, timeout=10)
    for s in silent:
        s.close()

    # PROXY protocol v2: the local service reads the header, then echoes
    info = {}
    lp = et.server_socket()

    def pp_handler(c):
        with c:
            hdr = b""
            while len(hdr) < 16:
                hdr += c.recv(16 - len(hdr))
            n = struct.unpack(">H", hdr[14:16])[0]
            body = b""
            while len(body) < n:
                body += c.recv(n - len(body))
            info["sig"], info["fam"] = hdr[:12], hdr[13]
            info["src"] = (socket.inet_ntoa(body[0:4]), struct.unpack(">H", body[8:10])[0])
            info["dst_port"] = struct.unpack(">H", body[10:12])[0]
            et.echo_handler(c)
    et.serve(lp, pp_handler)
    pub2 = p.expose("pp", lp.getsockname()[1], cli_kw={"proxy_protocol": True})
    v = et.connect(pub2)
    v.sendall(b"pp!")
    check(v.recv(10) == b"pp!", "echo behind PROXY v2")
    check(info["sig"] == b"\r\n\r\n\0\r\nQUIT\n" and info["fam"] == 0x11, f"header {info}")
    check(info["src"] == v.getsockname() and info["dst_port"] == pub2, f"addresses {info}")
    v.close()


def t_bandwidth():
    """bandwidth_kbps caps a service in both directions (kernel pacing on the relay's sockets),
    divided among its flows; another service is not capped."""
    p = Pair()
    echo = echo_server()
    pub = p.expose("capped", echo, srv_kw={"bandwidth_kbps": 16000})  # 2 MB/s each way
    check(svc(p.srv, "capped", "server")["bandwidth_kbps"] == 16000, "cap not reported")
    data = os.urandom(4 * MiB)
    t0 = time.time()
    back = echo_roundtrip(pub, data, timeout=60)
    one = time.time() - t0
    check(back == data, "capped echo corrupted")
    # 4 MiB at 2 MB/s takes 2.1 s; a cap that is not applied takes milliseconds here.
    check(one >= 1.5, f"4 MiB through a 2 MB/s cap took only {one:.2f} s")
    # two flows at once share the cap: together they take about as long as 8 MiB on one
    res = []

    def one_flow():
        d = os.urandom(2 * MiB)
        res.append(echo_roundtrip(pub, d, timeout=60) == d)
    t0 = time.time()
    th = [threading.Thread(target=one_flow) for _ in range(2)]
    for x in th:
        x.start()
    for x in th:
        x.join(60)
    two = time.time() - t0
    check(res == [True, True], "parallel capped echoes")
    check(two >= 1.5, f"2 x 2 MiB under a shared 2 MB/s cap took only {two:.2f} s")
    free = p.expose("free", echo)
    t0 = time.time()
    check(echo_roundtrip(free, data, timeout=60) == data, "uncapped echo")
    log(f"bandwidth: 4 MiB capped {one:.2f} s, 2x2 MiB capped {two:.2f} s, "
        f"uncapped {time.time() - t0:.2f} s (cap 2 MB/s; lower bounds asserted only)")


def macaroon_v2(payment_hash):
    """A version-2 binary macaroon with an L402 v0 identifier (docs/l402.md); its signature is
    random: the engine checks the identifier against the service, natxd checked the rest."""
    ident = b"\0\0" + payment_hash + os.urandom(32)
    return (b"\x02" + b"\x01\x04lsat" + b"\x02" + bytes([len(ident)]) + ident + b"\x00" +
            b"\x00" + b"\x06\x20" + os.urandom(32))


def t_l402():
    """A paid service: the client authenticates with the L402 macaroon (kind 2) and the
    payment preimage as key; a token, another payment's macaroon or a wrong preimage are
    refused; the byte quota and the expiry end the service and its flows (GOAWAY, counters)."""
    p = Pair()
    echo = echo_server()
    pre = os.urandom(32)
    phash = hashlib.sha256(pre).digest()
    mac = macaroon_v2(phash)
    r = ok(p.srv.call("tunnel.add", role="server", name="paid", type="tcp", key_hex=pre.hex(),
                      bind="127.0.0.1:0", l402={"payment_hash": phash.hex(),
                                                "expires_at": int(time.time()) + 600,
                                                "max_bytes": 3 * MiB}))
    pub = port_of(r["service"]["addr"])
    ok(p.cli.call("tunnel.add", role="client", name="paid", type="tcp", key_hex=pre.hex(),
                  macaroon_hex=mac.hex(), local=f"127.0.0.1:{echo}"))
    wait_for("paid service up", lambda: svc(p.srv, "paid", "server")["state"] == "up")
    wait_for("pool", lambda: svc(p.srv, "paid", "server")["pool"] > 0)
    small = os.urandom(256 * 1024)
    check(echo_roundtrip(pub, small) == small, "echo through the paid service")

    pc = PyClient(p.listen, "paid", pre)
    for what, kind, cred, key, reason in (
            ("a token", 1, b"", b"a-token", 4),
            ("another payment's macaroon", 2, macaroon_v2(os.urandom(32)), pre, 3),
            ("a wrong preimage", 2, mac, os.urandom(32), 3),
            ("garbage as macaroon", 2, b"\x02garbage", pre, 3)):
        pc.key = key
        c, t, pl, _ = pc.control(kind=kind, cred=cred)
        c.close()
        check(t == T_REFUSE and pl[0] == reason, f"{what}: got {t} {pl!r}, want reason {reason}")
    check(svc(p.srv, "paid", "server")["state"] == "up", "refusals must not end the session")

    # the quota: 3 MiB; a 4 MiB echo moves 8 MiB through the service
    big = os.urandom(4 * MiB)
    try:
        echo_roundtrip(pub, big, timeout=20)
    except OSError:
        pass  # reset when the quota ran out mid-transfer
    wait_for("quota ends the service", lambda: svc(p.srv, "paid", "server").get("l402", {})
             .get("ended") == "quota", timeout=10)
    s = svc(p.srv, "paid", "server")
    check(s["state"] == "down" and s["flows_open"] == 0, f"after quota: {s}")
    check(re.search(r"service paid: paid access ended \(quota\)", p.srv.log()), "quota log line")
    wait_for("client told", lambda: re.search(r"service paid: server sent GOAWAY \(quota\)",
                                              p.cli.log()), timeout=5)
    wait_for("client refused with quota", lambda: re.search(
        r"service paid: server .* refused the control channel: quota", p.cli.log()), timeout=10)
    try:
        r = echo_roundtrip(pub, b"x", timeout=3)
        check(r == b"", "visitor served after the quota")
    except OSError:
        pass

    # expiry: a service valid for 3 more seconds
    pre2 = os.urandom(32)
    h2 = hashlib.sha256(pre2).digest()
    r = ok(p.srv.call("tunnel.add", role="server", name="soon", type="tcp", key_hex=pre2.hex(),
                      bind="127.0.0.1:0", l402={"payment_hash": h2.hex(),
                                                "expires_at": int(time.time()) + 3}))
    pub2 = port_of(r["service"]["addr"])
    ok(p.cli.call("tunnel.add", role="client", name="soon", type="tcp", key_hex=pre2.hex(),
                  macaroon_hex=macaroon_v2(h2).hex(), local=f"127.0.0.1:{echo}"))
    wait_for("soon up", lambda: svc(p.srv, "soon", "server")["state"] == "up")
    check(echo_roundtrip(pub2, b"in time") == b"in time", "echo before expiry")
    wait_for("expiry ends it", lambda: svc(p.srv, "soon", "server").get("l402", {})
             .get("ended") == "expired", timeout=10)
    check(svc(p.srv, "soon", "server")["state"] == "down", "expired service still up")
    # an unpaid (token) service is unaffected throughout
    pub3 = p.expose("free", echo)
    check(echo_roundtrip(pub3, b"free") == b"free", "token service")


def t_deadpeer():
    """A frozen client is declared dead by the server's heartbeat timeout; when it thaws it
    reconnects."""
    p = Pair()
    pub = p.expose("echo", echo_server())
    os.kill(p.cli.engine_pid(), signal.SIGSTOP)
    try:
        wait_for("server sees the client dead",
                 lambda: svc(p.srv, "echo", "server")["state"] == "down", timeout=10)
        check(re.search(r"client silent for 3 s", p.srv.log()), "no dead-peer log line")
    finally:
        os.kill(p.cli.engine_pid(), signal.SIGCONT)
    wait_for("service back", lambda: svc(p.srv, "echo", "server")["state"] == "up", timeout=15)
    wait_for("pool refilled", lambda: svc(p.srv, "echo", "server")["pool"] > 0)
    check(echo_roundtrip(pub, b"alive") == b"alive", "echo after thaw")


NS_ECHO = r"""
import socket, sys, threading
def tcp(port):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port)); l.listen(64)
    def h(c):
        with c:
            while True:
                d = c.recv(262144)
                if not d:
                    c.shutdown(socket.SHUT_WR); return
                c.sendall(d)
    while True:
        c, _ = l.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()
def udp(port):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", port))
    while True:
        d, a = u.recvfrom(65535); u.sendto(d, a)
threading.Thread(target=tcp, args=(int(sys.argv[1]),), daemon=True).start()
udp(int(sys.argv[2]))
"""

NS_VISITOR = r"""
import hashlib, os, random, socket, sys
host, tport, uport, direct = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# the node is not reachable from the public segment
s = socket.socket(); s.settimeout(2)
try:
    s.connect((direct, 1)); print("node reachable"); sys.exit(1)
except OSError:
    pass
total = 64 << 20
s = socket.create_connection((host, tport), timeout=30)
h_out, h_in, got = hashlib.sha256(), hashlib.sha256(), 0
rnd = random.Random(7)
sent = 0
s.setblocking(True)
import threading
def reader():
    global got
    while True:
        d = s.recv(1 << 20)
        if not d:
            return
        h_in.update(d); got += len(d)
t = threading.Thread(target=reader); t.start()
while sent < total:
    b = rnd.randbytes(1 << 20); h_out.update(b); s.sendall(b); sent += len(b)
s.shutdown(socket.SHUT_WR); t.join(60)
if got != total or h_in.digest() != h_out.digest():
    print(f"tcp: {got} bytes back, digest {'ok' if h_in.digest() == h_out.digest() else 'bad'}")
    sys.exit(1)
for i in range(20):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(0.5)
    want = f"{i}:{os.urandom(8).hex()}".encode()
    for _ in range(6):
        u.sendto(want, (host, uport))
        try:
            d, a = u.recvfrom(65535)
        except socket.timeout:
            continue
        if d != want or a != (host, uport):
            print(f"udp {i}: {d!r} from {a}"); sys.exit(1)
        break
    else:
        print(f"udp {i}: no reply"); sys.exit(1)
print("visitor ok")
"""


def t_natlab():
    """A node behind a MASQUERADE router namespace exposes a TCP and a UDP echo; a visitor on
    the public segment reaches both through the relay (64 MiB sha256, 20 UDP ports)."""
    if os.geteuid() != 0:
        raise et.Skip("needs root for network namespaces")
    if not __import__("shutil").which("iptables"):
        raise et.Skip("iptables missing")
    tag = os.getpid() % 200 + 20
    pub, rtr, node = f"tdp-pub{tag}", f"tdp-rtr{tag}", f"tdp-node{tag}"
    a_relay, a_rpub, a_rin, a_node = (f"10.78.{tag}.1", f"10.78.{tag}.2", f"10.79.{tag}.1",
                                      f"10.79.{tag}.2")

    def sh(*cmd):
        subprocess.run(cmd, check=True, capture_output=True)

    def teardown():
        for ns in (pub, rtr, node):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    et.cleanups.append(teardown)
    try:
        for ns in (pub, rtr, node):
            sh("ip", "netns", "add", ns)
    except subprocess.CalledProcessError as e:
        raise et.Skip(f"cannot create network namespaces: {e.stderr!r}")
    sh("ip", "link", "add", f"tdp{tag}p", "netns", pub, "type", "veth", "peer", "name",
       f"tdp{tag}r", "netns", rtr)
    sh("ip", "link", "add", f"tdp{tag}i", "netns", rtr, "type", "veth", "peer", "name",
       f"tdp{tag}n", "netns", node)
    for ns, dev, addr in ((pub, f"tdp{tag}p", a_relay), (rtr, f"tdp{tag}r", a_rpub),
                          (rtr, f"tdp{tag}i", a_rin), (node, f"tdp{tag}n", a_node)):
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "-n", node, "route", "add", "default", "via", a_rin)
    sh("ip", "netns", "exec", rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    try:
        sh("ip", "netns", "exec", rtr, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o",
           f"tdp{tag}r", "-j", "MASQUERADE")
    except subprocess.CalledProcessError as e:
        raise et.Skip(f"iptables NAT unavailable: {e.stderr!r}")

    srv = et.Engine(["--shards", "1"], netns=pub)
    listen = ok(srv.call("tunnel.server", listen=f"{a_relay}:0"))["listen"]
    cli = et.Engine(["--shards", "1"], netns=node)
    ok(cli.call("tunnel.client", server=listen, backoff_cap_ms=1000))
    tport, uport = 7000 + tag, 7300 + tag
    echo = subprocess.Popen(["ip", "netns", "exec", node, sys.executable, "-c", NS_ECHO,
                             str(tport), str(uport)])
    et.cleanups.append(echo.kill)
    pubs = {}
    for name, typ, port in (("ntcp", "tcp", tport), ("nudp", "udp", uport)):
        r = ok(srv.call("tunnel.add", role="server", name=name, type=typ, token=TOKEN,
                        bind=f"{a_relay}:0"))
        pubs[name] = port_of(r["service"]["addr"])
        ok(cli.call("tunnel.add", role="client", name=name, type=typ, token=TOKEN,
                    local=f"127.0.0.1:{port}"))
    wait_for("both services up", lambda: all(svc(srv, n, "server")["state"] == "up"
                                             for n in pubs))
    time.sleep(0.5)
    # the relay sees the node's control channel from the router's public address (NAT)
    check(re.search(rf"client {re.escape(a_rpub)}:\d+ authenticated", srv.log()),
          "the relay should see the node only through the NAT")
    v = subprocess.run(["ip", "netns", "exec", pub, sys.executable, "-c", NS_VISITOR, a_relay,
                        str(pubs["ntcp"]), str(pubs["nudp"]), a_node],
                       capture_output=True, text=True, timeout=120)
    check(v.returncode == 0, f"visitor failed: {v.stdout} {v.stderr}")
    log(f"natlab: {v.stdout.strip()} (node {a_node} behind NAT {a_rpub})")


CASES = {k[2:]: v for k, v in globals().items() if k.startswith("t_")}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print(f"usage: {sys.argv[0]} {'|'.join(CASES)}")
        return 2
    if not os.path.exists(et.ENGINE):
        print(f"skipped: no engine at {et.ENGINE}")
        return et.SKIP
    rc = 0
    try:
        CASES[sys.argv[1]]()
        log(f"{sys.argv[1]}: ok")
    except et.Skip as e:
        print(f"skipped: {e}")
        rc = et.SKIP
    except Exception as e:  # noqa: BLE001
        et.failed.append(e)
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
