import { parse, protocol, type PGlite, type Results } from '@electric-sql/pglite';

const { serialize } = protocol;

interface Prepared {
  name: string;
  /** The parameter types PostgreSQL inferred, to serialise values as PGlite's own query() does. */
  paramTypes: number[];
  preparedAt: number;
}

/**
 * Named prepared statements for the embedded database. PGlite's `query()` sends every statement
 * as an unnamed one (Parse, Describe, Bind, Describe, Execute, Sync, six trips into
 * WebAssembly), so PostgreSQL parses and plans it on every call: for the run-job insert that
 * was three quarters of its 2.8 ms, on the one thread that serves every tenant. Here each
 * distinct SQL text is parsed once under a name, and later calls send Bind, Describe, Execute
 * and Sync as one message, reusing PostgreSQL's cached plan (0.65 ms for the same insert).
 *
 * A statement is prepared afresh once it is `maxAgeMs` old. PostgreSQL replaces a cached plan
 * when a table is analyzed, but PGlite has no autovacuum, so nothing ever is: a plan made while
 * `jobs` was small (a sequential scan) stayed in use as it grew, and completing a job went from
 * 1.4 to 14 ms over 20,000 jobs in the soak. Planning every call instead (plan_cache_mode
 * force_custom_plan) cost the insert 0.8 ms, enough to fail the tenant-fairness test.
 *
 * The cache is bounded (least recently used statements are closed) because some queries are
 * put together from parts (list filters), so the set of texts is not fixed. The caller holds
 * PGlite's locks (see `run`).
 */
export class PgliteStatements {
  private readonly prepared = new Map<string, Prepared>();
  private readonly toClose: string[] = [];
  private nextId = 0;

  constructor(
    private readonly pglite: PGlite,
    private readonly options: { capacity?: number; maxAgeMs?: number; now?: () => number } = {},
  ) {}

  /**
   * Runs `text` with `values`. Call it holding PGlite's query lock, and outside a transaction
   * also its transaction lock, as PGlite's own query() does, so no other statement interleaves.
   */
  async run<Row>(text: string, values: readonly unknown[]): Promise<Results<Row>> {
    let statement = this.prepared.get(text);
    const now = (this.options.now ?? Date.now)();
    if (
      statement !== undefined &&
      now - statement.preparedAt >= (this.options.maxAgeMs ?? 10_000)
    ) {
      this.prepared.delete(text);
      this.toClose.push(statement.name);
      statement = undefined;
    }
    statement ??= await this.prepare(text, now);
    // Most recently used last: Map keeps insertion order, so the first key is the one to evict.
    this.prepared.delete(text);
    this.prepared.set(text, statement);
    const messages = [
      ...this.toClose.splice(0).map((name) => serialize.close({ type: 'S', name })),
      serialize.bind({ statement: statement.name, values: this.serialise(statement, values) }),
      serialize.describe({ type: 'P' }),
      serialize.execute({}),
      serialize.sync(),
    ];
    const result = await this.pglite.execProtocol(concat(messages), { syncToFs: false });
    return parse.parseResults(result.messages, this.pglite.parsers)[0] as Results<Row>;
  }

  private async prepare(text: string, now: number): Promise<Prepared> {
    const name = `pie_${this.nextId++}`;
    const { messages } = await this.pglite.execProtocol(
      concat([
        serialize.parse({ name, text }),
        serialize.describe({ type: 'S', name }),
        serialize.sync(),
      ]),
      { syncToFs: false },
    );
    const described = messages.find((message) => message.name === 'parameterDescription') as
      { dataTypeIDs: number[] } | undefined;
    const statement = { name, paramTypes: described?.dataTypeIDs ?? [], preparedAt: now };
    if (this.prepared.size >= (this.options.capacity ?? 256)) {
      const [oldest] = this.prepared;
      if (oldest !== undefined) {
        this.prepared.delete(oldest[0]);
        this.toClose.push(oldest[1].name);
      }
    }
    return statement;
  }

  private serialise(statement: Prepared, values: readonly unknown[]): (string | null)[] {
    return values.map((value, i) => {
      if (value === null || value === undefined) return null;
      const type = statement.paramTypes[i];
      const serializer = type === undefined ? undefined : this.pglite.serializers[type];
      if (serializer !== undefined) return serializer(value);
      // A type PGlite has no serialiser for (text and its kin): objects as JSON, else as text.
      if (typeof value === 'string') return value;
      if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
        return value.toString();
      }
      return JSON.stringify(value);
    });
  }
}

function concat(messages: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(messages.reduce((total, message) => total + message.length, 0));
  let offset = 0;
  for (const message of messages) {
    out.set(message, offset);
    offset += message.length;
  }
  return out;
}
