// js-libp2p 3.x peer for the natx interop test (tests/interop/run.sh). One JSON object per line
// on stdout. Modes:
//   listen          listen on 127.0.0.1:0, serve ping, identify and /natx/echo/1.0.0, print
//                   {"event":"listening","addrs":[...]} then every identify as it arrives
//   dial MULTIADDR  ping the natx peer 3 times, report its identify, push 1 MiB through its
//                   echo service and compare, then stop (exit status 0 only if all worked)
//   vectors         print js-libp2p's reading of the peer ID vectors used by the C tests
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createHash, randomBytes } from 'node:crypto'

const ECHO = '/natx/echo/1.0.0'
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const mode = process.argv[2]

if (mode === 'vectors') {
  const cid = 'bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6'
  const id = peerIdFromString(cid)
  out({ event: 'vectors', cid, b58: id.toString(), cidBack: id.toCID().toString() })
  process.exit(0)
}

const node = await createLibp2p({
  addresses: { listen: mode === 'listen' ? ['/ip4/127.0.0.1/tcp/0'] : [] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), ping: ping() }
})

const toBytes = (chunk) => (chunk.subarray ? chunk.subarray() : chunk)

await node.handle(ECHO, async (stream) => {
  for await (const chunk of stream) {
    if (!stream.send(toBytes(chunk))) {
      await stream.onDrain()
    }
  }
  await stream.close()
}, { maxInboundStreams: 128 })

const identified = new Promise((resolve) => {
  node.addEventListener('peer:identify', (evt) => {
    const d = evt.detail
    const info = {
      event: 'identify',
      peer: d.peerId.toString(),
      agent: d.agentVersion,
      protocols: d.protocols,
      addrs: d.listenAddrs.map(String)
    }
    out(info)
    resolve(info)
  })
})

if (mode === 'listen') {
  out({ event: 'listening', peer: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
  const stop = async () => { await node.stop(); process.exit(0) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else if (mode === 'dial') {
  const ma = multiaddr(process.argv[3])
  let ok = true
  try {
    const rtts = []
    for (let i = 0; i < 3; i++) {
      rtts.push(await node.services.ping.ping(ma, { signal: AbortSignal.timeout(5000) }))
    }
    out({ event: 'ping', rtts })
    const info = await Promise.race([identified, new Promise((resolve) => setTimeout(() => resolve(null), 5000))])
    if (!info || !info.agent || !info.agent.startsWith('natx/')) {
      out({ event: 'error', what: 'identify', info })
      ok = false
    }
    const data = randomBytes(1 << 20)
    const stream = await node.dialProtocol(ma, ECHO, { signal: AbortSignal.timeout(10000) })
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
    for (let off = 0; off < data.length; off += 50000) {
      if (!stream.send(data.subarray(off, Math.min(off + 50000, data.length)))) {
        await stream.onDrain()
      }
    }
    await stream.close()
    const got = await reader
    const want = createHash('sha256').update(data).digest('hex')
    out({ event: 'echo', bytes: got.n, ok: got.digest === want })
    ok = ok && got.digest === want
  } catch (err) {
    out({ event: 'error', what: String(err && err.stack ? err.stack : err) })
    ok = false
  }
  await node.stop()
  process.exit(ok ? 0 : 1)
} else {
  console.error('usage: peer.mjs listen | dial MULTIADDR | vectors')
  process.exit(2)
}
