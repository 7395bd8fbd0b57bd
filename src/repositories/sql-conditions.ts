/**
 * A `where` clause built from the filters a request gave, each value bound to the next
 * placeholder of `values`. Only the values given become conditions, so each combination is its
 * own statement with its own plan: a filter written as `($3 is null or status = $3)` cannot be
 * an index condition in a plan reused for any value.
 */
export class SqlConditions {
  private readonly parts: string[];

  constructor(
    readonly values: unknown[],
    fixed: string[] = [],
  ) {
    this.parts = [...fixed];
  }

  /** Adds `sql(placeholder)`, with `value` bound to the placeholder, unless `value` is undefined. */
  add(value: unknown, sql: (placeholder: string) => string): this {
    if (value !== undefined) this.parts.push(sql(this.bind(value)));
    return this;
  }

  /** Binds `value` to the next placeholder and names it. */
  bind(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }

  toString(): string {
    return this.parts.length === 0 ? 'true' : this.parts.join(' and ');
  }
}
