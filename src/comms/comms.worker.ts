/**
 * The outbox loops of `pledge serve`: each runs a step, and when a step found nothing to do,
 * waits for the poll interval. Two loops run side by side so that one batch is claimed and
 * its recipients resolved while the other is on the wire. Stopping waits for the steps in
 * progress, so no claim is left half-done by a clean shutdown (an unclean one is covered by
 * the claim's lease).
 */
export class OutboxWorker {
  private running = false;
  private current: Promise<unknown> | undefined;
  private readonly sleepers = new Set<() => void>();

  constructor(
    private readonly step: () => Promise<number>,
    private readonly pollIntervalMs: number,
    private readonly onError: (error: unknown) => void,
    private readonly loops = 2,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.current = Promise.all(Array.from({ length: this.loops }, () => this.loop()));
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const wake of this.sleepers) wake();
    await this.current;
  }

  private sleep(): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, this.pollIntervalMs);
      this.sleepers.add(wake);
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let done = 0;
      try {
        done = await this.step();
      } catch (error) {
        this.onError(error);
      }
      if (done === 0 && this.running) await this.sleep();
    }
  }
}
