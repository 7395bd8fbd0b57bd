/**
 * The `lane_seq` of the rows of a multi-row insert into `jobs` (migration 000006 says what a
 * lane and its numbers are). Each lane's next number comes from `pie_next_lane_seq`, called once
 * per lane among the rows (not once per row: each call reads the queue's indexes, and 10,000
 * rows of one lane would read them 10,000 times), then the lane's rows take consecutive numbers
 * from it in the insert's order, since the statement does not see its own rows.
 *
 * Use: give the rows a `lane_key` column (`laneKey`), add the CTE `laneStarts(rows)`, and
 * insert from the rows joined to `lanes` using (lane_key), with `laneSeq(order)` as lane_seq.
 */

/**
 * The lane a row (alias `row`, with client_id, domain_id, handler_type, model_id,
 * model_version and priority) queues in: push jobs of all kinds share one queue, pull jobs
 * queue by model version.
 */
export function laneKey(row: string): string {
  const pull = `${row}.handler_type = 'worker'`;
  return `jsonb_build_array(${row}.client_id, ${row}.domain_id, ${pull},
    case when ${pull} then ${row}.model_id end, case when ${pull} then ${row}.model_version end,
    ${row}.priority)`;
}

/** The CTE `lanes (lane_key, first)`: the next free number of each lane among `rows`. */
export function laneStarts(rows: string): string {
  return `lanes as materialized (
    select lane_key,
      pie_next_lane_seq(client_id, domain_id, handler_type, model_id, model_version, priority)
        as first
    from (select distinct on (lane_key) * from ${rows}) one_row_per_lane
  )`;
}

/** A row's lane_seq: its lane's first free number, plus its place among the lane's rows. */
export function laneSeq(order: string): string {
  return `lanes.first + row_number() over (partition by lane_key order by ${order}) - 1`;
}
