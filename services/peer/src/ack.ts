/** The gateway's `ackFor`, asked of the channel service over NATS. */
import { ErrorCode, NatsError, type NatsConnection } from "nats";
import { decodeAckReply, PeerEventDecodeError, peerSubjects } from "@ln/proto";

/**
 * `ackFor` by a NATS request on `<prefix>.<peer>.ack`; the channel service answers with an
 * `ack_reply` (peer.proto; 0 when it has no live channel with the peer). No responders, no answer
 * within `timeoutMs`, or an answer without an ack rejects, and the connection is closed: a guessed
 * 0 would be below the floor of a peer whose messages we had acknowledged, and it would fail the
 * channel (draft 1.2). The peer reconnects once the channel service is back.
 */
export function natsAckFor(
  nc: NatsConnection,
  prefix: string,
  timeoutMs: number,
): (peerNodeId: Buffer) => Promise<bigint> {
  return async (peerNodeId) => {
    let data: Uint8Array;
    try {
      const m = await nc.request(peerSubjects(prefix, peerNodeId.toString("hex")).ack, new Uint8Array(), {
        timeout: timeoutMs,
      });
      data = m.data;
    } catch (e) {
      if (e instanceof NatsError && (e.code === ErrorCode.NoResponders || e.code === ErrorCode.Timeout))
        throw new Error(
          `the channel service did not answer the ack request for this peer (${e.code}); is it running for ${prefix}?`,
          { cause: e },
        );
      throw e;
    }
    try {
      return decodeAckReply(data);
    } catch (e) {
      if (e instanceof PeerEventDecodeError)
        throw new Error(`the channel service's answer to the ack request did not decode: ${e.message}`, {
          cause: e,
        });
      throw e;
    }
  };
}
