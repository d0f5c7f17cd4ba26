// tests/interop/relay_bench.mjs - the js-libp2p 3.x relay of bench/relay.sh: @libp2p/circuit-relay-v2
// circuitRelayServer on 127.0.0.1:0 with the limits that would cut a benchmark raised (no
// per-circuit data or duration limit, up to MAX reservations, connection manager limits high),
// everything else as js ships it. Loopback only.
//   node --expose-gc relay_bench.mjs MAX [nomon]
// nomon: connection monitor off (see below).
// stdout, one JSON object per line:
//   {"event":"listening","peer":ID,"addrs":[...]}     once, when it serves
//   {"event":"stats","reservations":N,"connections":C,"rss_kb":R,"heap_kb":H,"gc":true|false}
//       on SIGUSR2: after a full garbage collection when node runs with --expose-gc ("gc":true),
//       so the harness reads the RSS of live objects, not of garbage waiting to be collected
// Runs until SIGTERM/SIGINT. Lives here to use tests/interop's pinned node_modules.
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const max = Number(process.argv[2] ?? 20000)
const monitor = process.argv[3] !== 'nomon'
if (!Number.isInteger(max) || max < 1 || (process.argv[3] ?? 'nomon') !== 'nomon') {
  console.error('usage: relay_bench.mjs MAX_RESERVATIONS [nomon]')
  process.exit(2)
}

const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp({ backlog: 4096 })],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: {
    maxConnections: max + 1024,
    maxIncomingPendingConnections: 4096,
    inboundConnectionThreshold: 1e9,
    inboundUpgradeTimeout: 60000
  },
  // The connection monitor (on by default) pings every connection with a /ipfs/ping/1.0.0
  // stream every 10 s: at thousands of idle reservations that alone takes a core here and
  // stalls new reservations. "nomon" turns it off to measure js at its best (natx keeps its
  // connections with yamux pings, no stream per ping).
  connectionMonitor: { enabled: monitor },
  services: {
    identify: identify(),
    ping: ping(),
    relay: circuitRelayServer({
      hopTimeout: 60000,
      maxOutboundStopStreams: max + 1024,
      reservations: {
        maxReservations: max,
        applyDefaultLimit: false, // no 128 KiB / 2 min limit on circuits
        reservationTtl: 2 * 60 * 60 * 1000
      }
    })
  }
})

// reservations - live reservations (the store is a private field of the server in 3.x; read it
// without changing anything)
const reservations = () => node.services.relay.reservationStore?.reservations?.size ?? -1

process.on('SIGUSR2', () => {
  const gc = typeof globalThis.gc === 'function'
  if (gc) {
    globalThis.gc()
    globalThis.gc()
  }
  const m = process.memoryUsage()
  out({
    event: 'stats',
    reservations: reservations(),
    connections: node.getConnections().length,
    rss_kb: Math.round(m.rss / 1024),
    heap_kb: Math.round(m.heapUsed / 1024),
    gc
  })
})
const stop = async () => { await node.stop(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
out({ event: 'listening', peer: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
