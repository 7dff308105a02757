-- Retention: what DWOP keeps only for a while. purge_expired(p_keep) deletes, at most p_batch rows of
-- each kind a call (so no transaction holds locks for long; a caller calls again while it returns any):
--   published outbox rows published before now - p_keep (a task's pending rows are never published);
--   events and live-log chunks of workflows that ended before now - p_keep;
--   webhook deliveries received before now - p_keep (a replay is refused by its timestamp long before);
--   submissions of workflows that ended before now - p_keep (their idempotency keys are then free);
--   dispatcher rows not heard from since now - p_keep that hold no active run.
-- And at once, whatever the age: the callback URL and secret of a submission whose callback has been
-- delivered or given up (the secret is not needed again). Returns how many rows of each kind went.
create function dwop.purge_expired(p_keep interval, p_batch int default 10000, p_now timestamptz default null)
returns jsonb
language plpgsql as $$
declare
  v_before timestamptz := coalesce(p_now, now()) - p_keep;
  v_outbox int;
  v_events int;
  v_chunks int;
  v_deliveries int;
  v_submissions int;
  v_secrets int;
  v_dispatchers int;
begin
  delete from dwop.outbox where id in (
    select id from dwop.outbox where published_at < v_before limit p_batch);
  get diagnostics v_outbox = row_count;

  delete from dwop.events where id in (
    select e.id from dwop.events e join dwop.workflows w on w.id = e.workflow_id
    where w.finished_at < v_before limit p_batch);
  get diagnostics v_events = row_count;

  delete from dwop.run_log_chunks where (run_id, byte_offset) in (
    select c.run_id, c.byte_offset from dwop.run_log_chunks c join dwop.workflows w on w.id = c.workflow_id
    where w.finished_at < v_before limit p_batch);
  get diagnostics v_chunks = row_count;

  delete from dwop.hook_deliveries where (trigger_id, delivery_id) in (
    select trigger_id, delivery_id from dwop.hook_deliveries where received_at < v_before limit p_batch);
  get diagnostics v_deliveries = row_count;

  delete from dwop.submissions where workflow_id in (
    select s.workflow_id from dwop.submissions s join dwop.workflows w on w.id = s.workflow_id
    where w.finished_at < v_before limit p_batch);
  get diagnostics v_submissions = row_count;

  update dwop.submissions set callback_url = null, callback_secret = null
  where workflow_id in (
    select s.workflow_id from dwop.submissions s
    where s.callback_secret is not null
      and exists (select 1 from dwop.outbox o
                  where o.topic = 'workflow.callback' and o.published_at is not null
                    and o.payload ->> 'workflowId' = s.workflow_id::text)
    limit p_batch);
  get diagnostics v_secrets = row_count;

  delete from dwop.dispatchers d where d.id in (
    select id from dwop.dispatchers where heartbeat_at < v_before limit p_batch)
    and not exists (select 1 from dwop.runs r
                    where r.dispatcher_id = d.id and r.status in ('starting', 'dispatched', 'running'));
  get diagnostics v_dispatchers = row_count;

  return jsonb_build_object('outbox', v_outbox, 'events', v_events, 'logChunks', v_chunks,
    'hookDeliveries', v_deliveries, 'submissions', v_submissions, 'callbackSecrets', v_secrets,
    'dispatchers', v_dispatchers);
end;
$$;
