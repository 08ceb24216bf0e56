"use strict";

// bdb requires leveldown at load time but only calls it for on-disk databases.
// @ln/regtest always runs bcoin with `memory: true`, so reaching this is a configuration error.
function leveldown(location) {
  throw new Error(
    `leveldown stub: on-disk LevelDB (${String(location)}) is not available; start bcoin with memory: true`,
  );
}

module.exports = leveldown;
