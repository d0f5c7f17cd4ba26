// js-libp2p 3.x nodes for the NAT lab (tests/p2p/relay_lab_js.sh): they run inside the lab's
// network namespaces, behind its Linux NAT routers. One JSON object per line on stdout. Modes:
//   relay LISTEN            a js relay (@libp2p/circuit-relay-v2 circuitRelayServer, default
//                           limits) on LISTEN (/ip4/ADDR/tcp/PORT); prints
//                           {"event":"listening","peer":...,"addrs":[...]}, runs until SIGTERM
//   listen RELAYADDR        reserve on the relay at RELAYADDR (listen on RELAYADDR/p2p-circuit)
//                           and serve /lab/echo/1.0.0 (also on limited connections); prints
//                           {"event":"reserved","peer":...,"addrs":[<circuit addrs>]}, runs until
//                           SIGTERM
//   send ADDR BYTES         dial ADDR (a /p2p-circuit address), push BYTES random bytes through its
//                           /lab/echo/1.0.0 and read them back; prints {"event":"echo","bytes",
//                           "sent_sha256","echo_sha256","relayed","ms"}; exit status 0 only if
//                           the digests are equal, all bytes came back and the connection is
//                           relayed
//   dcutr-a CIRCUIT ANNOUNCE BYTES
//                           DCUtR as A (@libp2p/dcutr): listen on /ip4/0.0.0.0/tcp/4001 and announce
//                           ANNOUNCE (our NAT's public address); ping the peer at its /p2p-circuit
//                           address CIRCUIT (the peer, B, starts DCUtR on that relayed
//                           connection), wait (20 s at most) for a direct connection to it and
//                           print {"event":"direct","remote":...}; then push BYTES through its
//                           /lab/echo/1.0.0 as `send` does ("relayed" false expected); exit status
//                           0 only if the connection went direct and the echo is intact. Run with
//                           `node --import ./lab_loader.mjs` (the lab's addresses are 198.18/15)
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createHash, randomBytes } from 'node:crypto'

const ECHO = '/lab/echo/1.0.0'
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const [mode, arg, arg2] = process.argv.slice(2)
const toBytes = (chunk) => (chunk.subarray ? chunk.subarray() : chunk)

const arg3 = process.argv[5]
if (!['relay', 'listen', 'send', 'dcutr-a'].includes(mode) || !arg || (mode === 'send' && !arg2) ||
    (mode === 'dcutr-a' && !arg3)) {
  console.error('usage: lab.mjs relay LISTEN | listen RELAYADDR | send ADDR BYTES | dcutr-a CIRCUIT ANNOUNCE BYTES')
  process.exit(2)
}

const services = { identify: identify(), ping: ping() }
if (mode === 'relay') {
  services.relay = circuitRelayServer()
}
if (mode === 'dcutr-a') {
  services.dcutr = dcutr()
}
const listen = { relay: [arg], listen: [`${arg}/p2p-circuit`], 'dcutr-a': ['/ip4/0.0.0.0/tcp/4001'] }
const node = await createLibp2p({
  addresses: { listen: listen[mode] ?? [], announce: mode === 'dcutr-a' ? [arg2] : [] },
  transports: [tcp(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services
})

const stopOnSignal = () => {
  const stop = async () => { await node.stop(); process.exit(0) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

if (mode === 'relay') {
  out({ event: 'listening', peer: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
  stopOnSignal()
} else if (mode === 'listen') {
  await node.handle(ECHO, async (stream) => {
    for await (const chunk of stream) {
      if (!stream.send(toBytes(chunk))) {
        await stream.onDrain()
      }
    }
    await stream.close()
  }, { runOnLimitedConnection: true, maxInboundStreams: 16 })
  const circuit = () => node.getMultiaddrs().map(String).filter((a) => a.includes('/p2p-circuit'))
  const deadline = Date.now() + 30000
  while (circuit().length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  if (circuit().length === 0) {
    out({ event: 'error', what: 'no reservation' })
    await node.stop()
    process.exit(1)
  }
  out({ event: 'reserved', peer: node.peerId.toString(), addrs: circuit() })
  stopOnSignal()
} else {
  let ok = false
  try {
    let ma = multiaddr(arg)
    let size = Number(arg2)
    if (mode === 'dcutr-a') {
      // the relayed connection; B (the peer we reached through the relay) starts DCUtR on it
      const rtts = []
      for (let i = 0; i < 3; i++) {
        rtts.push(await node.services.ping.ping(ma, { signal: AbortSignal.timeout(10000) }))
      }
      out({ event: 'ping', rtts })
      const peer = peerIdFromString(arg.split('/p2p/').pop())
      const direct = () => node.getConnections(peer).find((c) => !c.remoteAddr.toString().includes('/p2p-circuit'))
      const deadline = Date.now() + 20000
      while (!direct() && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      const d = direct()
      out({ event: d ? 'direct' : 'not-direct', remote: d ? d.remoteAddr.toString() : null, conns: node.getConnections(peer).map((c) => c.remoteAddr.toString()) })
      if (!d) {
        throw new Error('no direct connection after DCUtR')
      }
      ma = peer
      size = Number(arg3)
    }
    const data = randomBytes(size)
    const t0 = Date.now()
    const stream = await node.dialProtocol(ma, ECHO, {
      signal: AbortSignal.timeout(20000),
      runOnLimitedConnection: true
    })
    const reader = (async () => {
      const h = createHash('sha256')
      let n = 0
      for await (const chunk of stream) {
        const b = toBytes(chunk)
        h.update(b)
        n += b.length
      }
      return { n, digest: h.digest('hex') }
    })()
    for (let off = 0; off < data.length; off += 65536) {
      if (!stream.send(data.subarray(off, Math.min(off + 65536, data.length)))) {
        await stream.onDrain()
      }
    }
    await stream.close()
    const got = await reader
    const want = createHash('sha256').update(data).digest('hex')
    const conn = node.getConnections().find((c) => c.remoteAddr.toString().includes('/p2p-circuit'))
    out({
      event: 'echo',
      bytes: got.n,
      sent_sha256: want,
      echo_sha256: got.digest,
      relayed: Boolean(conn),
      remote: conn ? conn.remoteAddr.toString() : null,
      ms: Date.now() - t0
    })
    ok = got.n === size && got.digest === want && (mode === 'dcutr-a' ? !conn : Boolean(conn))
  } catch (err) {
    out({ event: 'error', what: String(err && err.stack ? err.stack : err) })
  }
  await node.stop()
  process.exit(ok ? 0 : 1)
}
