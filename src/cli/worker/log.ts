/** One line on stderr, marked as the worker's. */
export function log(line: string): void {
  process.stderr.write(`pie worker: ${line}\n`);
}
