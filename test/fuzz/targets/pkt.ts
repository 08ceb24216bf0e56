/** The `pkt` decoder, with the draft's unknown-field rule ("it's OK to be odd", section 1). */
import { decodePkt, encodePkt, WireError, type Pkt } from "@ln/proto";
import { cases } from "../../../packages/proto/test/fixtures.js";
import { encodeField } from "../mutate.js";
import { ACCEPTED, check, codedErrors, type TargetSpec } from "../target.js";
import { gossipPkts } from "./gossip.js";
import { scenario } from "./scenario.js";

// Field numbers the pkt message does not define (checked in create), one of each parity.
const UNKNOWN_ODD = { id: 1_000_001, wireType: 0, payload: Buffer.from([0x2a]) };
const UNKNOWN_EVEN = { id: 1_000_000, wireType: 2, payload: Buffer.from("even") };

/** Every valid pkt we can build: the hand-checked fixtures, a channel's life, signed gossip. */
export async function pktCorpus(): Promise<Pkt[]> {
  const s = await scenario();
  return [...cases.map(([, p]) => p), ...s.pkts, ...(await gossipPkts())];
}

export const pktTarget: TargetSpec = {
  name: "pkt",
  weight: 750,
  what: "decodePkt on any bytes; a decoded pkt re-encodes canonically, an unknown odd field is ignored, an unknown even one rejected",
  async create() {
    const corpus = (await pktCorpus()).map((p) => encodePkt(p));
    const odd = encodeField(UNKNOWN_ODD);
    const even = encodeField(UNKNOWN_EVEN);
    return {
      name: "pkt",
      corpus,
      protoFrom: 0,
      typed: codedErrors(WireError),
      run(input) {
        const p = decodePkt(input);
        const canonical = encodePkt(p);
        check(encodePkt(decodePkt(canonical)).equals(canonical), "a decoded pkt does not round-trip");
        // Draft 1: an unknown odd field MUST be ignored, an unknown even one MUST be an error.
        const withOdd = decodePkt(Buffer.concat([input, odd]));
        check(encodePkt(withOdd).equals(canonical), "an unknown odd field changed the decoded pkt");
        let evenCode: string | undefined;
        try {
          decodePkt(Buffer.concat([input, even]));
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
          evenCode = e.code;
        }
        check(evenCode === "UNKNOWN_EVEN_FIELD", `an unknown even field gave ${evenCode ?? "a pkt"}`);
        return ACCEPTED;
      },
    };
  },
};
