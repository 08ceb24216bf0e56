/** A minimal Prometheus counter of requests by method, route and status; no dependency. */
export class RequestMetrics {
  private readonly counts = new Map<string, number>();
  private readonly started = Date.now();

  count(method: string, route: string, status: number): void {
    const key = `method="${esc(method)}",route="${esc(route)}",status="${status}"`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  render(): string {
    const lines = [
      "# HELP channel_api_requests_total HTTP requests served by the control API.",
      "# TYPE channel_api_requests_total counter",
      ...[...this.counts.entries()].sort().map(([labels, n]) => `channel_api_requests_total{${labels}} ${n}`),
      "# HELP channel_api_uptime_seconds Seconds since the API started.",
      "# TYPE channel_api_uptime_seconds gauge",
      `channel_api_uptime_seconds ${Math.floor((Date.now() - this.started) / 1000)}`,
    ];
    return `${lines.join("\n")}\n`;
  }
}

const esc = (s: string): string => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
