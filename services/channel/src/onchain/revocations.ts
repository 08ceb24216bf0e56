import { crashPoint } from "@ln/crash";
import type { SignerClient } from "@ln/signer-client";
import type { Report } from "../channels/errors.js";
import type { TowerPort } from "../channels/ports.js";
import type { ChannelRegistry } from "../channels/registry.js";
import { recordPeerRevocation } from "../channels/signer-adapter.js";
import type { ChannelStore } from "../channels/store.js";

/** How often the peer's revocations left unrecorded (and tower records unpublished) are retried. */
const REVOCATION_ROUND_MS = 5000;

export interface RevocationsOptions {
  store: ChannelStore;
  signer: SignerClient;
  registry: ChannelRegistry;
  tower: TowerPort;
  report: Report;
}

/**
 * The peer's revocations, kept by the store with the state that received them, handed to the
 * signer (it signs justice only for commitments it knows were revoked) and, as sealed records,
 * to the watchtower; what fails is retried every few seconds.
 */
export class Revocations {
  private nextRevocationRound = 0;

  constructor(private readonly o: RevocationsOptions) {}

  /**
   * Gives the signer every revocation of the peer the store kept for it (written with the state
   * that received it); a failure is retried on the next round, so none is lost to a crash.
   */
  async recordRevocations(id: string): Promise<void> {
    const m = this.o.registry.metaOf(id);
    if (!m) return;
    for (const r of await this.o.store.unrecordedRevocations(id)) {
      await recordPeerRevocation(this.o.signer, m.signerChannel, r);
      crashPoint("channel.revocation.recorded");
      await this.o.store.markRevocationRecorded(id, r.number);
    }
  }

  /**
   * Hands the watchtower the records written so far; a failure leaves them for the next round
   * (every few seconds). Until published, the tower cannot punish those revoked commitments.
   */
  async publishTowerRecords(): Promise<void> {
    await this.o.tower
      .publishPending()
      .catch((e: unknown) =>
        this.o.report(
          "ALERT revocation records not handed to the watchtower yet (retrying; is it running?)",
          e,
        ),
      );
  }

  /** Every few seconds: what is left to record with the signer, then to publish to the tower. */
  async round(now: number): Promise<void> {
    if (now < this.nextRevocationRound) return;
    this.nextRevocationRound = now + REVOCATION_ROUND_MS;
    const pending = await this.o.store.channelsWithUnrecordedRevocations().catch((e: unknown) => {
      this.o.report("listing unrecorded revocations", e);
      return [];
    });
    for (const id of pending.filter((x) => this.o.registry.holds(x)))
      await this.recordRevocations(id).catch((e: unknown) =>
        this.o.report(`ALERT channel ${id}: recording the peer's revocations with the signer`, e),
      );
    await this.publishTowerRecords();
  }
}
