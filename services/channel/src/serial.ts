/**
 * Work from one NATS subscription, run one piece after another in arrival order; a failure is
 * reported and does not stop the pieces after it.
 */
export function serialWork(onError?: (e: Error) => void): {
  report: (e: unknown) => void;
  enqueue: (work: () => Promise<unknown>) => void;
} {
  const report = (e: unknown): void => onError?.(e instanceof Error ? e : new Error(String(e)));
  let chain: Promise<unknown> = Promise.resolve();
  return {
    report,
    enqueue: (work) => {
      chain = chain.then(work).catch(report);
    },
  };
}
