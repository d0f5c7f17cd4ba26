// js-libp2p 3.x stream bridging, the js side of tests/integration/p2p_bulk_js.sh and of
// bench/p2p/run.sh (js <-> js rows). One JSON object per line on stdout. Loopback only.
//   expose PROTO HOST:PORT      listen on 127.0.0.1:0; every inbound PROTO stream gets a new TCP
//                               connection to HOST:PORT, bytes both ways (like `p2p expose`);
//                               prints {"event":"listening","addrs":[...]}
//   forward PROTO MULTIADDR     listen on TCP 127.0.0.1:0; every accepted connection gets a new
//                               PROTO stream to MULTIADDR (like `p2p forward`); prints
//                               {"event":"forwarding","port":N}
//   echo                        listen on 127.0.0.1:0 and echo /p2d/echo/1.0.0 (and
//                               /natx/echo/1.0.0) streams; prints {"event":"listening",...}
//   push MULTIADDR PROTO BYTES N
//                               open N concurrent PROTO streams on one connection; each sends
//                               BYTES of random data, closes its write side
//                               and reads the echo; SHA-256 of both compared per stream; exit 0
//                               only if all N matched
// Half-close is passed on both ways (TCP EOF <-> stream close of the write side; the sockets are
// allowHalfOpen, or Node would end our side at the peer's FIN and drop the tail); an error or
// reset on one side destroys the other. Backpressure: socket.write() false pauses the stream,
// stream.send() false pauses the socket.
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')
const [mode, ...args] = process.argv.slice(2)
const ECHO = ['/p2d/echo/1.0.0', '/natx/echo/1.0.0']
const STREAMS = 256
const bytesOf = (d) => (d.subarray ? d.subarray() : d)
// resume - resume a paused stream unless its readable end closed meanwhile (reset, abort)
const resume = (s) => { if (s.readStatus === 'paused') s.resume() }
// pause - pause @s from a 'message' handler. Deferred to a microtask: resume() dispatches the
// buffered bytes to the handler and then sends a yamux window update, which would undo a pause
// made inside the dispatch (the stream would keep granting windows while nothing is read).
const pause = (s) => queueMicrotask(() => { if (s.readStatus === 'readable') s.pause() })

function usage () {
  console.error('usage: bridge.mjs expose PROTO HOST:PORT | forward PROTO MULTIADDR | echo | ' +
    'push MULTIADDR PROTO BYTES N')
  process.exit(2)
}

async function node (listen) {
  return createLibp2p({
    addresses: { listen: listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({ maxInboundStreams: STREAMS, maxOutboundStreams: STREAMS })],
    connectionManager: { maxConnections: 1024 }
  })
}

// bridge - splice libp2p stream @s and TCP socket @sock until both directions ended.
function bridge (s, sock) {
  // js-libp2p resets a paused stream whose read buffer passes maxReadBufferLength (4 MiB by
  // default), yet yamux grows the window it grants up to 16 MiB: a fast sender may fill the
  // whole window while the TCP side is slow. Allow the full window.
  s.maxReadBufferLength = 32 << 20
  s.addEventListener('message', (evt) => {
    if (!sock.write(bytesOf(evt.data))) {
      pause(s)
      sock.once('drain', () => resume(s))
    }
  })
  s.addEventListener('end', () => sock.end())
  s.addEventListener('close', (evt) => {
    if (evt.error) {
      console.error('stream closed with error:', String(evt.error))
      sock.destroy()
    }
  })
  sock.on('data', (chunk) => {
    try {
      if (!s.send(chunk)) {
        sock.pause()
        s.onDrain().then(() => sock.resume(), () => sock.destroy())
      }
    } catch {
      sock.destroy()
    }
  })
  sock.on('end', () => { s.close().catch(() => {}) })
  sock.on('error', (err) => s.abort(err))
  sock.on('close', (hadError) => { if (hadError) s.abort(new Error('tcp side failed')) })
}

async function pushOne (conn, proto, size) {
  const s = await conn.newStream(proto, { signal: AbortSignal.timeout(10000) })
  const got = createHash('sha256')
  const sent = createHash('sha256')
  let n = 0
  const reader = new Promise((resolve, reject) => {
    s.addEventListener('message', (evt) => {
      const b = bytesOf(evt.data)
      got.update(b)
      n += b.length
    })
    s.addEventListener('end', () => resolve())
    s.addEventListener('close', (evt) => { if (evt.error) reject(evt.error); else resolve() })
  })
  for (let off = 0; off < size; off += 65536) {
    const b = randomBytes(Math.min(65536, size - off))
    sent.update(b)
    if (!s.send(b)) await s.onDrain()
  }
  await s.close()
  await reader
  return { n, ok: n === size && got.digest('hex') === sent.digest('hex') }
}

if (mode === 'expose' && args.length === 2) {
  const [proto, target] = args
  const i = target.lastIndexOf(':')
  const host = target.slice(0, i)
  const port = Number(target.slice(i + 1))
  const n = await node(true)
  await n.handle(proto, (s) => {
    const sock = net.connect({ host, port, noDelay: true, allowHalfOpen: true })
    bridge(s, sock)
  }, { maxInboundStreams: STREAMS })
  out({ event: 'listening', peer: n.peerId.toString(), addrs: n.getMultiaddrs().map(String) })
  const stop = async () => { await n.stop(); process.exit(0) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else if (mode === 'forward' && args.length === 2) {
  const [proto, ma] = args
  const n = await node(false)
  const peer = multiaddr(ma)
  const srv = net.createServer({ noDelay: true, allowHalfOpen: true }, async (sock) => {
    sock.pause()
    try {
      const s = await n.dialProtocol(peer, proto, { signal: AbortSignal.timeout(10000) })
      bridge(s, sock)
      sock.resume()
    } catch (err) {
      out({ event: 'error', what: String(err) })
      sock.destroy()
    }
  })
  srv.listen(0, '127.0.0.1', () => out({ event: 'forwarding', port: srv.address().port }))
  const stop = async () => { srv.close(); await n.stop(); process.exit(0) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else if (mode === 'echo' && args.length === 0) {
  const n = await node(true)
  await n.handle(ECHO, (s) => {
    s.maxReadBufferLength = 32 << 20 // see bridge()
    s.addEventListener('message', (evt) => {
      if (!s.send(bytesOf(evt.data))) {
        pause(s)
        s.onDrain().then(() => resume(s), () => {})
      }
    })
    s.addEventListener('end', () => { s.close().catch(() => {}) })
  }, { maxInboundStreams: STREAMS })
  out({ event: 'listening', peer: n.peerId.toString(), addrs: n.getMultiaddrs().map(String) })
  const stop = async () => { await n.stop(); process.exit(0) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else if (mode === 'push' && args.length === 4) {
  const [ma, proto, bytes, count] = args
  const size = Number(bytes)
  const k = Number(count)
  const n = await node(false)
  let ok = false
  try {
    const conn = await n.dial(multiaddr(ma), { signal: AbortSignal.timeout(10000) })
    const t0 = Date.now()
    const res = await Promise.all(Array.from({ length: k }, (_, i) => pushOne(conn, proto, size)))
    const matched = res.filter((r) => r.ok).length
    ok = matched === k
    out({ event: 'push', streams: k, bytes_each: size, matched, ok, ms: Date.now() - t0, conns: n.getConnections().length })
  } catch (err) {
    out({ event: 'error', what: String(err && err.stack ? err.stack : err) })
  }
  await n.stop()
  process.exit(ok ? 0 : 1)
} else {
  usage()
}
