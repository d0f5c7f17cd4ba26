// js-libp2p 3.x peers for the natx circuit relay v2 interop test (tests/interop/run.sh).
// One JSON object per line on stdout. Modes:
//   relay               js relay (@libp2p/circuit-relay-v2 circuitRelayServer) on 127.0.0.1:0;
//                       prints {"event":"listening","addrs":[...]}, runs until SIGTERM
//   reserve RELAYADDR   reserve a slot on the relay at RELAYADDR (listen on RELAYADDR/p2p-circuit);
//                       prints {"event":"reserved","addrs":[<circuit addrs>]}, serves ping until SIGTERM
//   dial-circuit ADDR   reach a peer through its /p2p-circuit address: identify + 3 pings;
//                       exit status 0 only if all worked
//   autonat-server      an AutoNAT v1 server (@libp2p/autonat) on 127.0.0.1:0, like relay
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { autoNAT } from '@libp2p/autonat'
import { multiaddr } from '@multiformats/multiaddr'

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const mode = process.argv[2]
const arg = process.argv[3]

const services = { identify: identify(), ping: ping() }
if (mode === 'relay') {
  services.relay = circuitRelayServer()
}
if (mode === 'autonat-server') {
  services.autonat = autoNAT()
}
const node = await createLibp2p({
  addresses: {
    listen: mode === 'relay' || mode === 'autonat-server' ? ['/ip4/127.0.0.1/tcp/0'] : mode === 'reserve' ? [`${arg}/p2p-circuit`] : []
  },
  transports: [tcp(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services
})

const identified = new Promise((resolve) => {
  node.addEventListener('peer:identify', (evt) => {
    const d = evt.detail
    const info = { event: 'identify', peer: d.peerId.toString(), agent: d.agentVersion, protocols: d.protocols }
    out(info)
    if (d.agentVersion && d.agentVersion.startsWith('natx/')) {
      resolve(info)
    }
  })
})

const stopOnSignal = () => {
  const stop = async () => { await node.stop(); process.exit(0) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

if (mode === 'relay' || mode === 'autonat-server') {
  out({ event: 'listening', peer: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
  stopOnSignal()
} else if (mode === 'reserve') {
  const circuit = () => node.getMultiaddrs().map(String).filter((a) => a.includes('/p2p-circuit'))
  const deadline = Date.now() + 20000
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
} else if (mode === 'dial-circuit') {
  let ok = true
  try {
    const ma = multiaddr(arg)
    const rtts = []
    for (let i = 0; i < 3; i++) {
      rtts.push(await node.services.ping.ping(ma, { signal: AbortSignal.timeout(10000) }))
    }
    const conn = node.getConnections().find((c) => c.remoteAddr.toString().includes('/p2p-circuit'))
    out({ event: 'ping', rtts, relayed: Boolean(conn), limited: conn ? conn.limits != null : null })
    if (!conn) {
      ok = false
    }
    const info = await Promise.race([identified, new Promise((resolve) => setTimeout(() => resolve(null), 5000))])
    out({ event: 'identified', info })
  } catch (err) {
    out({ event: 'error', what: String(err && err.stack ? err.stack : err) })
    ok = false
  }
  await node.stop()
  process.exit(ok ? 0 : 1)
} else {
  console.error('usage: relay.mjs relay | reserve RELAYADDR | dial-circuit ADDR | autonat-server')
  process.exit(2)
}
