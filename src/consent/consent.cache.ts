import type { Database } from '../core/db.js';
import type { ChangeListener } from '../core/pg-changes.js';
import type { ConsentAction, ConsentTargetKind } from './consent.tables.js';

/** A recorded decision, as a decision check reads it. */
export interface RecordedState {
  readonly action: ConsentAction;
  readonly decided_at: string;
}

/** One decision read from the database, by primary key. */
export type StateRead = (holder: string, kind: ConsentTargetKind, target: string) => Promise<RecordedState | undefined>;

/** The channel migration 0011's trigger NOTIFYs (with the schema: `pledge_consent_state.public`) with the holders whose state moved ('*': all of them). */
export const CONSENT_STATE_CHANNEL = 'pledge_consent_state';

/**
 * How many holders a process remembers the states of; beyond it the longest remembered is
 * forgotten first. A holder is a few hundred bytes: the default bounds it near 30 MB.
 */
const MAX_HOLDERS = 100_000;

/**
 * The consent states a PostgreSQL process read recently, kept so that "may P be used for S?"
 * costs a fence instead of a look-up — and answered only when nothing can have changed them.
 *
 * A remembered state is forgotten as soon as the listening connection hears that its holder's
 * state moved (the trigger of migration 0011 tells of every change, from any process, made any
 * way). Before answering from memory, the check waits for a fence on that connection, sent after
 * the question arrived: when it returns, every change committed before the question has been
 * heard (see ChangeListener). So a withdrawal acknowledged by any process holds for every
 * question asked of any process after it — exactly as a read of the database would.
 *
 * What is not remembered is read from the database (the batched reader) and remembered only if
 * no change and no loss of the listening connection came while the read was out: such a read
 * may have started before a change it would not see. While the connection is down, everything
 * is forgotten and every question reads the database.
 *
 *   const states = new ConsentStateCache(database.changes, (holder, kind, target) => store.stateOf(database.db, holder, kind, target));
 *   const state = await states.stateOf('sub_…', 'purpose', 'marketing');
 */
export class ConsentStateCache {
  private readonly holders = new Map<string, Map<string, RecordedState | null>>();
  /** The listening connection this memory follows. */
  readonly changes: ChangeListener;
  /** Answers from memory, for metrics and tests. */
  hits = 0;

  constructor(
    changes: NonNullable<Database['changes']>,
    private readonly read: StateRead,
    private readonly maxHolders = MAX_HOLDERS,
  ) {
    this.changes = changes(CONSENT_STATE_CHANNEL, this.forget, this.forgetAll);
  }

  stateOf(holder: string, kind: ConsentTargetKind, target: string): Promise<RecordedState | undefined> {
    const key = `${kind}:${target}`;
    if (this.holders.get(holder)?.get(key) === undefined || !this.changes.isListening()) return this.readAndRemember(holder, kind, target, key);
    return this.changes.fence().then((fenced) => {
      // Forgotten while the fence was out: the change it heard of is this holder's.
      const remembered = fenced ? this.holders.get(holder)?.get(key) : undefined;
      if (remembered === undefined) return this.readAndRemember(holder, kind, target, key);
      this.hits++;
      return remembered ?? undefined;
    });
  }

  private readAndRemember(holder: string, kind: ConsentTargetKind, target: string, key: string): Promise<RecordedState | undefined> {
    const listening = this.changes.isListening();
    const generation = this.changes.generation;
    return this.read(holder, kind, target).then((state) => {
      if (listening && this.changes.generation === generation) this.remember(holder, key, state);
      return state;
    });
  }

  private remember(holder: string, key: string, state: RecordedState | undefined): void {
    let states = this.holders.get(holder);
    if (!states) {
      if (this.holders.size >= this.maxHolders) this.holders.delete(this.holders.keys().next().value!);
      states = new Map();
      this.holders.set(holder, states);
    }
    // One object answers every later question: frozen, so no caller can change it for the next.
    states.set(key, state ? Object.freeze({ action: state.action, decided_at: state.decided_at }) : null);
  }

  /** A notification names the holders of one statement, separated by spaces; '*' all of them. */
  private readonly forget = (holders: string): void => {
    if (holders === '*') this.holders.clear();
    else for (const holder of holders.split(' ')) this.holders.delete(holder);
  };

  private readonly forgetAll = (): void => {
    this.holders.clear();
  };
}
