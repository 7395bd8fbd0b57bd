/**
 * A `pie serve`'s /metrics as a map from each series (its name and labels, as printed, e.g.
 * `pie_jobs_created_total{job_type="inference"}`) to its value, in the order printed (so a
 * histogram's buckets come smallest first).
 */
export async function scrapeMetrics(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    series.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return series;
}
