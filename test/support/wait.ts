/**
 * Waits until `condition` holds, asking every `intervalMs`; throws naming `what` once
 * `timeoutMs` have passed. For what another process or connection does in its own time.
 *
 *   await until(() => sink.messages.length === 3, 10_000, 'three messages at the sink');
 */
export async function until(condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string, intervalMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
