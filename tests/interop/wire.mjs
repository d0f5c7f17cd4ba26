// js-libp2p 3.x peer for the natx engine wire tests (tests/integration/p2p_wire_js.sh). One JSON
// object per line on stdout. Modes:
//   dial MULTIADDR [N]  connect to natx-engine (through natxd's config), ping it N times (3),
//                       wait for its identify record, print {"event":"result",...}; exit 0 only
//                       when every ping answered and identify said agent natx/<version>
//   noise-fail MULTIADDR dial with a wrong expected peer ID (the /p2p/ part replaced by a fresh
//                       identity): the Noise handshake must fail on js's side; exit 0 when it did
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { multiaddr } from '@multiformats/multiaddr'

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const mode = process.argv[2]

const node = await createLibp2p({
  addresses: { listen: [] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), ping: ping() }
})

const identified = new Promise((resolve) => {
  node.addEventListener('peer:identify', (evt) => {
    const d = evt.detail
    resolve({
      peer: d.peerId.toString(),
      agent: d.agentVersion,
      protocolVersion: d.protocolVersion,
      protocols: d.protocols,
      addrs: d.listenAddrs.map(String)
    })
  })
})

let ok = false
try {
  if (mode === 'dial') {
    const ma = multiaddr(process.argv[3])
    const n = Number(process.argv[4] || 3)
    const rtts = []
    for (let i = 0; i < n; i++) {
      rtts.push(await node.services.ping.ping(ma, { signal: AbortSignal.timeout(5000) }))
    }
    const info = await Promise.race([identified, new Promise((resolve) => setTimeout(() => resolve(null), 5000))])
    ok = rtts.length === n && info !== null && typeof info.agent === 'string' &&
      info.agent.startsWith('natx/') && info.protocols.includes('/ipfs/ping/1.0.0') &&
      info.protocols.includes('/ipfs/id/1.0.0')
    out({ event: 'result', ok, rtts, identify: info })
  } else if (mode === 'noise-fail') {
    const { generateKeyPair } = await import('@libp2p/crypto/keys')
    const { peerIdFromPrivateKey } = await import('@libp2p/peer-id')
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const base = process.argv[3].replace(/\/p2p\/.*$/, '')
    try {
      await node.dial(multiaddr(`${base}/p2p/${other}`), { signal: AbortSignal.timeout(5000) })
      out({ event: 'result', ok: false, why: 'dial with a wrong peer ID succeeded' })
    } catch (err) {
      ok = true
      out({ event: 'result', ok, error: String(err && err.name ? err.name : err) })
    }
  } else {
    console.error('usage: wire.mjs dial MULTIADDR [N] | noise-fail MULTIADDR')
    process.exit(2)
  }
} catch (err) {
  out({ event: 'error', what: String(err && err.stack ? err.stack : err) })
}
await node.stop()
process.exit(ok ? 0 : 1)
