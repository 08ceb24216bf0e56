import type { ChannelState } from "@ln/channel-core";

/** The best block the node has seen (0 until the first one or the stored tip). */
export class ChainTip {
  height = 0;
  time = 0;

  set(height: number, time: number): void {
    [this.height, this.time] = [height, time];
  }

  /** The later of a channel's tip and ours. */
  later(chain: ChannelState["chain"]): ChannelState["chain"] {
    return { height: Math.max(chain.height, this.height), time: Math.max(chain.time, this.time) };
  }
}
