/**
 * The `lane_seq` of each row of a multi-row insert into `jobs` whose rows carry `client_id`,
 * `domain_id`, `handler_type`, `model_id`, `model_version` and `priority`: the lane's next
 * number (`pie_next_lane_seq`, migration 000006), then consecutive ones for the lane's further
 * rows in `order`, since the statement does not see its own rows.
 */
export function laneSeqOfRows(order: string): string {
  return `pie_next_lane_seq(client_id, domain_id, handler_type, model_id, model_version, priority)
    + row_number() over (
        partition by client_id, domain_id, handler_type = 'worker',
          case when handler_type = 'worker' then model_id end,
          case when handler_type = 'worker' then model_version end,
          priority
        order by ${order})
    - 1`;
}
