/** A step of a keyset walk: what it did, and the key to go on after (null: the walk is done). */
export interface KeysetBatch {
  next: string | null;
}

/**
 * Walks a table in batches by key, from the start to the end: `step(after)` handles the batch
 * after `after` ('' first) and says where the next one starts; `onBatch` sees each batch as it
 * is done (to add up counts and report progress). A walk cut off part-way loses nothing done:
 * every step is its own transaction, and running the walk again skips what no longer needs it.
 */
export async function walkInBatches<B extends KeysetBatch>(step: (after: string) => Promise<B>, onBatch: (batch: B) => void): Promise<void> {
  for (let after: string | null = ''; after !== null; ) {
    const batch = await step(after);
    onBatch(batch);
    after = batch.next;
  }
}
