/**
 * The outbox loop of `pledge serve`: runs a step, and when a step found nothing to do, waits
 * for the poll interval. Stopping waits for the step in progress, so no claim is left
 * half-done by a clean shutdown (an unclean one is covered by the claim's lease).
 */
export class OutboxWorker {
  private running = false;
  private current: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly step: () => Promise<number>,
    private readonly pollIntervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.current = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.current;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let done = 0;
      try {
        done = await this.step();
      } catch (error) {
        this.onError(error);
      }
      if (done === 0 && this.running) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          this.timer = setTimeout(resolve, this.pollIntervalMs);
        });
      }
    }
  }
}
