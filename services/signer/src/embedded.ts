/** The signer's parts, for a process that composes them itself (tests across services, the lab). */
export { KeyRing, decryptSeed } from "./keys.js";
export { startServer, type RunningServer } from "./server.js";
export { SignerService } from "./service.js";
export { SignerStore } from "./store.js";
export { parseClients, type ClientRole, type Clients } from "./permissions.js";
