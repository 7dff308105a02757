-- Completion callbacks: when a workflow submitted with a callback URL ends, an outbox row of topic
-- 'workflow.callback' is written in the same transaction. Claimers send those rows over HTTP instead of
-- publishing them to the bus, and record each try: delivered, retried after a backoff, or given up.
-- The outbox's columns for it are made with the table (20261126000100); finish_workflow_if_done and
-- cancel_workflow (20261126000200) call enqueue_workflow_callback below; claim_outbox_events
-- (20261126000300) claims callback rows as it claims task rows, given the topic.

-- What a callback says about a workflow: its state and each task's state, attempts and last error.
create function dwop.workflow_summary_json(p_workflow_id uuid)
returns jsonb
language sql stable as $$
  select jsonb_build_object(
    'id', w.id, 'name', w.name, 'status', w.status, 'createdAt', w.created_at, 'finishedAt', w.finished_at,
    'tasks', coalesce((
      select jsonb_agg(jsonb_build_object(
               'name', t.name, 'status', t.status, 'error', t.error,
               'attempts', (select count(*) from dwop.runs r where r.task_id = t.id)) order by t.position)
      from dwop.tasks t where t.workflow_id = w.id), '[]'::jsonb))
  from dwop.workflows w where w.id = p_workflow_id;
$$;

-- Queues the callback of a workflow that has just ended, if it was submitted with one. The summary is
-- taken now, so every try of one delivery sends the same body.
create function dwop.enqueue_workflow_callback(p_workflow_id uuid, p_now timestamptz)
returns void
language sql as $$
  insert into dwop.outbox (topic, payload, available_at, created_at)
  select 'workflow.callback',
         jsonb_build_object('workflowId', s.workflow_id, 'summary', dwop.workflow_summary_json(s.workflow_id)),
         p_now, p_now
  from dwop.submissions s
  where s.workflow_id = p_workflow_id and s.callback_url is not null;
$$;

-- Records one try of a callback held by p_claimer_id: p_error null means delivered (a 2xx answer).
-- A failed try is retried after p_backoff_ms doubled per try (at most an hour) until p_max_attempts
-- tries, then given up. Returns 'delivered', 'retrying', 'gave_up', or 'ignored' when the claimer no
-- longer holds the row.
create function dwop.record_callback_result(p_claimer_id text, p_id bigint, p_error text,
                                            p_max_attempts int default 10, p_backoff_ms int default 1000,
                                            p_now timestamptz default null)
returns text
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_row dwop.outbox;
  v_tries int;
  v_workflow uuid;
  v_delay_ms bigint;
begin
  select * into v_row from dwop.outbox
  where id = p_id and topic = 'workflow.callback' and claimed_by = p_claimer_id and published_at is null
  for update;
  if not found then
    return 'ignored';
  end if;
  v_tries := v_row.delivery_attempts + 1;
  v_workflow := (v_row.payload->>'workflowId')::uuid;

  if p_error is null then
    update dwop.outbox set published_at = v_now, lease_until = null, delivery_attempts = v_tries, last_error = null
    where id = p_id;
    perform dwop.log_event(v_workflow, 'callback', null, 'delivered', v_tries, null, v_now);
    return 'delivered';
  end if;

  if v_tries >= p_max_attempts then
    update dwop.outbox
    set published_at = v_now, gave_up_at = v_now, lease_until = null, delivery_attempts = v_tries,
        last_error = p_error
    where id = p_id;
    perform dwop.log_event(v_workflow, 'callback', null, 'failed', v_tries,
                           jsonb_build_object('error', p_error), v_now);
    return 'gave_up';
  end if;

  v_delay_ms := least(p_backoff_ms::bigint * (2 ^ (v_tries - 1))::bigint, 3600000);
  update dwop.outbox
  set available_at = v_now + make_interval(secs => v_delay_ms / 1000.0), claimed_by = null, lease_until = null,
      delivery_attempts = v_tries, last_error = p_error
  where id = p_id;
  perform dwop.log_event(v_workflow, 'callback', null, 'retrying', v_tries,
                         jsonb_build_object('error', p_error, 'delay_ms', v_delay_ms), v_now);
  return 'retrying';
end;
$$;
