/**
 * A TCP proxy in front of a node's peer gateway, so a chaos run can drop peer connections (there
 * is no disconnect API): the dialing node connects to the proxy's port, and cut() destroys every
 * connection through it (optionally refusing new ones for a while). The channel service redials
 * the address it was given (peers/reconnect.ts), which is the proxy's, so the link comes back.
 */
import net, { type AddressInfo, type Socket } from "node:net";

export class PeerProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  #refuseUntil = 0;
  port = 0;

  constructor(readonly targetPort: number) {
    this.#server = net.createServer((inbound) => this.#accept(inbound));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(0, "127.0.0.1", () => resolve());
    });
    this.port = (this.#server.address() as AddressInfo).port;
    return this.port;
  }

  /** Connections open through the proxy now. */
  get open(): number {
    return this.#pairs.size;
  }

  /** Destroys every open connection; refuses new ones for `refuseMs`. Returns how many were cut. */
  cut(refuseMs = 0): number {
    this.#refuseUntil = Date.now() + refuseMs;
    const n = this.#pairs.size;
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    this.#pairs.clear();
    return n;
  }

  /** Accept connections again at once. */
  heal(): void {
    this.#refuseUntil = 0;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  #accept(inbound: Socket): void {
    if (Date.now() < this.#refuseUntil) {
      inbound.destroy();
      return;
    }
    const outbound = net.connect(this.targetPort, "127.0.0.1");
    const pair: [Socket, Socket] = [inbound, outbound];
    this.#pairs.add(pair);
    const end = (): void => {
      this.#pairs.delete(pair);
      inbound.destroy();
      outbound.destroy();
    };
    // A reset on either side ends both: the peers see a dropped connection, nothing else.
    inbound.on("error", end);
    outbound.on("error", end);
    inbound.on("close", end);
    outbound.on("close", end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }
}
