/** One figure of a benchmark run, as written to bench/results/latest.json. */
export interface Metric {
  /** e.g. `run_job.requests_per_s`, `cycle.pie.jobs_per_s`, `init.10000.seconds` */
  name: string;
  value: number;
  /** e.g. `req/s`, `jobs/s`, `ms`, `s`, `MB` */
  unit: string;
  /** Printed beside the figure and kept in latest.json, e.g. why it is not like for like. */
  note?: string;
}

/** What every scenario gets from the orchestrator (bench/run.ts). */
export interface BenchContext {
  /** Shorter runs (`npm run bench -- --quick`): the whole bench under 60 s. */
  quick: boolean;
  /** A fresh, migrated PostgreSQL database for this run (postgres://...). */
  databaseUrl: string;
  /** A running `pie serve` on that database (http://127.0.0.1:port), dispatch on. */
  pieUrl: string;
  /** The PID of that `pie serve`, for RSS. */
  piePid: number;
  /** An admin token the PIE above accepts. */
  adminToken: string;
  /** Prints a progress line to stderr. */
  log: (line: string) => void;
}

export type Scenario = (ctx: BenchContext) => Promise<Metric[]>;
