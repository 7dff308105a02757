-- Completion callbacks: when a workflow submitted with a callback URL ends, an outbox row of topic
-- 'workflow.callback' is written in the same transaction. Claimers send those rows over HTTP instead of
-- publishing them to the bus, and record each try: delivered, retried after a backoff, or given up.

alter table dwop.outbox drop constraint outbox_topic_check;
alter table dwop.outbox add constraint outbox_topic_check check (topic in ('task.ready', 'workflow.callback'));
alter table dwop.outbox
  add column delivery_attempts int not null default 0 check (delivery_attempts >= 0),
  add column last_error text,
  -- Set with published_at when a callback was given up: the row has left the outbox, undelivered.
  add column gave_up_at timestamptz;

create index outbox_callbacks_unpublished on dwop.outbox (id)
  where published_at is null and topic = 'workflow.callback';

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

-- As in 20261126000200, plus the completion callback in the same transaction.
create or replace function dwop.finish_workflow_if_done(p_workflow_id uuid, p_now timestamptz)
returns text
language plpgsql as $$
declare
  v_status text;
  v_final text;
begin
  select status into v_status from dwop.workflows where id = p_workflow_id for no key update;
  if v_status is null or v_status in ('succeeded', 'failed', 'cancelled') then
    return null;
  end if;
  if exists (select 1 from dwop.tasks
             where workflow_id = p_workflow_id and status in ('pending', 'queued', 'dispatched', 'running')) then
    return null;
  end if;

  select case
           when bool_or(status in ('failed', 'upstream_failed')) then 'failed'
           when bool_or(status = 'cancelled') then 'cancelled'
           else 'succeeded'
         end
  into v_final
  from dwop.tasks where workflow_id = p_workflow_id;

  update dwop.workflows
  set status = v_final, finished_at = p_now, updated_at = p_now, started_at = coalesce(started_at, p_now)
  where id = p_workflow_id;
  perform dwop.log_event(p_workflow_id, 'workflow', null, v_final, null, null, p_now);
  perform dwop.enqueue_workflow_callback(p_workflow_id, p_now);
  perform pg_notify('dwop_workflow_done', p_workflow_id::text);
  return v_final;
end;
$$;

-- As in 20261126000200, plus the completion callback: cancelling ends a workflow too.
create or replace function dwop.cancel_workflow(p_workflow_id uuid, p_now timestamptz default null)
returns int
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_count int;
begin
  perform 1 from dwop.workflows where id = p_workflow_id;
  if not found then
    return null;
  end if;

  update dwop.runs set status = 'cancelled', finished_at = v_now
  where workflow_id = p_workflow_id and status in ('starting', 'dispatched', 'running');

  with cancelled as (
    update dwop.tasks set status = 'cancelled', finished_at = v_now
    where workflow_id = p_workflow_id and status in ('pending', 'queued', 'dispatched', 'running')
    returning name, attempt
  )
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, at)
  select p_workflow_id, 'task', name, 'cancelled', attempt, v_now from cancelled;
  get diagnostics v_count = row_count;

  update dwop.workflows set status = 'cancelled', finished_at = v_now, updated_at = v_now
  where id = p_workflow_id and status in ('queued', 'running');
  if found then
    perform dwop.log_event(p_workflow_id, 'workflow', null, 'cancelled', null, null, v_now);
    perform dwop.enqueue_workflow_callback(p_workflow_id, v_now);
    perform pg_notify('dwop_cancel', p_workflow_id::text);
    perform pg_notify('dwop_workflow_done', p_workflow_id::text);
  end if;
  return v_count;
end;
$$;

-- As in 20261126000300, but for task rows only: callback rows go to claim_callback_events.
create or replace function dwop.claim_outbox_events(p_claimer_id text, p_batch_size int,
                                                    p_lease_seconds int default 30, p_now timestamptz default null)
returns table (id bigint, topic text, payload jsonb)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with due as (
    select o.id from dwop.outbox o
    where o.published_at is null and o.topic = 'task.ready' and o.available_at <= v_now
      and (o.lease_until is null or o.lease_until < v_now)
    order by o.id
    limit p_batch_size
    for update skip locked
  )
  update dwop.outbox o
  set claimed_by = p_claimer_id, lease_until = v_now + make_interval(secs => p_lease_seconds),
      claim_count = o.claim_count + 1
  from due where o.id = due.id
  returning o.id, o.topic, o.payload;
end;
$$;

-- Claims up to p_batch_size due callback rows (a lease, as for task rows), with where and how to send
-- each: the URL and signing secret of its submission, the body, and which try this is (from 1).
create function dwop.claim_callback_events(p_claimer_id text, p_batch_size int, p_lease_seconds int default 30,
                                           p_now timestamptz default null)
returns table (id bigint, workflow_id uuid, url text, secret text, body jsonb, attempt int)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with due as (
    select o.id from dwop.outbox o
    where o.published_at is null and o.topic = 'workflow.callback' and o.available_at <= v_now
      and (o.lease_until is null or o.lease_until < v_now)
    order by o.id
    limit p_batch_size
    for update skip locked
  ),
  claimed as (
    update dwop.outbox o
    set claimed_by = p_claimer_id, lease_until = v_now + make_interval(secs => p_lease_seconds),
        claim_count = o.claim_count + 1
    from due where o.id = due.id
    returning o.id, o.payload, o.delivery_attempts
  )
  select c.id, s.workflow_id, s.callback_url, s.callback_secret, c.payload->'summary', c.delivery_attempts + 1
  from claimed c join dwop.submissions s on s.workflow_id = (c.payload->>'workflowId')::uuid
  order by c.id;
end;
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
