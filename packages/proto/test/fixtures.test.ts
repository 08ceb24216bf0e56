import { decodePkt, encodePkt, lightningRoot } from "@ln/proto";
import { describe, expect, it } from "vitest";
import { cases } from "./fixtures.js";

describe("every pkt kind against hand-derived bytes", () => {
  const pktType = lightningRoot.lookupType("lightning.pkt");
  it.each(cases)("%s", (_name, pkt, hex) => {
    expect(encodePkt(pkt).toString("hex")).toBe(hex);
    expect(decodePkt(Buffer.from(hex, "hex"))).toEqual(pkt);
    // protobufjs's own decoder and encoder (field-number order) agree on the same bytes.
    const viaProtobufjs = pktType.encode(pktType.decode(Buffer.from(hex, "hex"))).finish();
    expect(Buffer.from(viaProtobufjs).toString("hex")).toBe(hex);
  });

  it("covers all seventeen kinds (fourteen of the draft, three of gossip)", () => {
    expect(new Set(cases.map(([, p]) => p.kind)).size).toBe(17);
  });
});
