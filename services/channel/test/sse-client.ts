/** A minimal server-sent events reader over fetch, for the tests: frames as the server wrote them. */

export interface SseFrame {
  id: string | undefined;
  event: string | undefined;
  data: string | undefined;
  /** Comment lines (`: ...`) of the frame. */
  comments: string[];
}

export class SseReader {
  private buffer = "";
  private readonly decoder = new TextDecoder();
  private constructor(
    readonly response: Response,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly abort: AbortController,
  ) {}

  static async open(url: string, headers: Record<string, string>): Promise<SseReader> {
    const abort = new AbortController();
    const response = await fetch(url, { headers, signal: abort.signal });
    if (!response.body) throw new Error("no body");
    return new SseReader(response, response.body.getReader(), abort);
  }

  /** The next frame; undefined once the server ended the stream. */
  async next(): Promise<SseFrame | undefined> {
    for (;;) {
      const at = this.buffer.indexOf("\n\n");
      if (at >= 0) {
        const block = this.buffer.slice(0, at);
        this.buffer = this.buffer.slice(at + 2);
        return parse(block);
      }
      const r = await this.reader.read();
      if (r.done) return undefined;
      this.buffer += this.decoder.decode(r.value, { stream: true });
    }
  }

  /** The next frame that carries an event (skipping comments and `retry:`). */
  async nextEvent(): Promise<SseFrame | undefined> {
    for (;;) {
      const f = await this.next();
      if (!f || f.event !== undefined || f.data !== undefined) return f;
    }
  }

  /** The client goes away (as a dropped connection would). */
  close(): void {
    this.abort.abort();
  }
}

function parse(block: string): SseFrame {
  const f: SseFrame = { id: undefined, event: undefined, data: undefined, comments: [] };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) f.comments.push(line.slice(1).trim());
    else if (line.startsWith("id: ")) f.id = line.slice(4);
    else if (line.startsWith("event: ")) f.event = line.slice(7);
    else if (line.startsWith("data: ")) f.data = line.slice(6);
  }
  return f;
}
