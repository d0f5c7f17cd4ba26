// `node --import ./lab_loader.mjs lab.mjs dcutr-a ...` (tests/p2p/relay_lab_js.sh, DCUtR part).
// The lab's public side is 198.18.0.0/15, the range RFC 2544 reserves for test networks;
// @libp2p/utils lists it as private, so @libp2p/dcutr would refuse every lab address as "not
// public". lab_hooks.mjs removes exactly that one range from the list in
// @libp2p/utils/dist/src/private-ip.js, in this node process only; nothing else of js-libp2p is
// changed.
import { register } from 'node:module'

register('./lab_hooks.mjs', import.meta.url)
