-- Submitting, finishing, cancelling and retrying workflows. Every function takes an optional p_now so
-- tests move time instead of sleeping.

-- Records one event of a workflow's life (read back by the API's event stream and by stage latencies).
create function dwop.log_event(p_workflow_id uuid, p_kind text, p_task_name text, p_status text,
                               p_attempt int, p_data jsonb, p_now timestamptz)
returns void
language sql as $$
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, data, at)
  values (p_workflow_id, p_kind, p_task_name, p_status, p_attempt, p_data, p_now);
$$;

-- Inserts a workflow, its tasks and one outbox row per root task, in one transaction.
-- p_tasks is a JSON array in topological order of
--   {"name", "params": [{"name", "upstream"}], "retries", "timeout_seconds", "backoff_ms", "options",
--    "pool", "priority"}.
-- Upstreams starting with "inputs." are submit-time inputs, not tasks. Submitting an id that already
-- exists changes nothing and returns false. Task ids are drawn from the sequence first, so each task
-- row is written once, with both directions of its edges.
create function dwop.submit_workflow(p_id uuid, p_owner text, p_name text, p_source text,
                                     p_has_requirements boolean, p_inputs text[], p_tasks jsonb,
                                     p_now timestamptz default null)
returns boolean
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_count int := jsonb_array_length(p_tasks);
  v_ids bigint[];
  v_unknown text;
  v_sequence regclass := pg_get_serial_sequence('dwop.tasks', 'id')::regclass;
begin
  insert into dwop.workflows (id, owner, name, source, has_requirements, inputs, task_count, created_at, updated_at)
  values (p_id, p_owner, p_name, p_source, p_has_requirements, coalesce(p_inputs, '{}'), v_count, v_now, v_now)
  on conflict (id) do nothing;
  if not found then
    return false;
  end if;

  select p->>'upstream' into v_unknown
  from jsonb_array_elements(p_tasks) t
  cross join lateral jsonb_array_elements(coalesce(t->'params', '[]')) p
  where p->>'upstream' not like 'inputs.%'
    and not exists (select 1 from jsonb_array_elements(p_tasks) u where u->>'name' = p->>'upstream')
  limit 1;
  if v_unknown is not null then
    raise exception 'workflow % names an upstream that is not one of its tasks: %', p_id, v_unknown
      using errcode = '22023';
  end if;

  -- Pools (20261205000200): a task names an existing pool; the pool rows are held until commit, so a
  -- pool is not deleted under a workflow that uses it.
  select t->>'pool' into v_unknown
  from jsonb_array_elements(p_tasks) t
  where t->>'pool' is not null
    and not exists (select 1 from dwop.pools p where p.name = t->>'pool')
  limit 1;
  if v_unknown is not null then
    raise exception 'the workflow names pool %, which does not exist (an operator makes it with PUT /pools/%)',
      v_unknown, v_unknown using errcode = 'DW001';
  end if;
  perform 1 from dwop.pools p
  where p.name in (select t->>'pool' from jsonb_array_elements(p_tasks) t) for key share;

  select array_agg(nextval(v_sequence) order by g) into v_ids from generate_series(1, v_count) g;

  with specs as (
    select t.spec, t.ord::int as ord, v_ids[t.ord] as id, t.spec->>'name' as name
    from jsonb_array_elements(p_tasks) with ordinality as t (spec, ord)
  ),
  links as (
    select distinct d.id as down, u.id as up
    from specs d
    cross join lateral jsonb_array_elements(coalesce(d.spec->'params', '[]')) p
    join specs u on u.name = p->>'upstream'
  ),
  ups as (select down as id, array_agg(up order by up) as ids from links group by down),
  downs as (select up as id, array_agg(down order by down) as ids from links group by up)
  insert into dwop.tasks (id, workflow_id, name, position, status, attempt, max_retries, retry_backoff_ms,
                          max_infra_retries, timeout_seconds, options, params, upstream_ids, downstream_ids,
                          pending_inputs, created_at, queued_at,
                          owner, pool, priority)
  overriding system value
  select s.id, p_id, s.name, s.ord, case when u.ids is null then 'queued' else 'pending' end,
         case when u.ids is null then 1 else 0 end,
         coalesce((s.spec->>'retries')::int, 0), coalesce((s.spec->>'backoff_ms')::int, 1000),
         coalesce((s.spec->>'max_infra_retries')::int, 3), (s.spec->>'timeout_seconds')::int, coalesce(s.spec->'options', '{}'), coalesce(s.spec->'params', '[]'),
         coalesce(u.ids, '{}'), coalesce(d.ids, '{}'), coalesce(cardinality(u.ids), 0),
         v_now, case when u.ids is null then v_now end,
         p_owner, s.spec->>'pool', coalesce((s.spec->>'priority')::int, 0)
  from specs s
  left join ups u on u.id = s.id
  left join downs d on d.id = s.id;

  if not exists (select 1 from dwop.tasks where workflow_id = p_id and status = 'queued') then
    raise exception 'workflow % has no root task', p_id using errcode = '22023';
  end if;

  insert into dwop.outbox (payload, available_at, created_at, owner, priority)
  select jsonb_build_object('taskId', id::text, 'attempt', 1), v_now, v_now, owner, priority
  from dwop.tasks where workflow_id = p_id and status = 'queued'
  order by position;

  perform dwop.log_event(p_id, 'workflow', null, 'queued', null, jsonb_build_object('tasks', v_count), v_now);
  return true;
end;
$$;

-- Ends the workflow when none of its tasks can move any more. Locking the workflow row first makes the
-- check see every task transition committed before it, so two last tasks finishing at once cannot both
-- miss the end. The lock is FOR NO KEY UPDATE: it excludes other finishers but not the KEY SHARE locks
-- that inserting events (a foreign key to the workflow) takes, which would otherwise deadlock two
-- completions that each hold a task the other waits for. The completion callback (enqueue_workflow_callback,
-- of migration 20261126000420) is queued in the same transaction.
create function dwop.finish_workflow_if_done(p_workflow_id uuid, p_now timestamptz)
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

-- Marks every task downstream of p_task_id that is still waiting as upstream_failed, naming the failed
-- task in its error.
create function dwop.fail_downstream(p_task_id bigint, p_now timestamptz)
returns int
language plpgsql as $$
declare
  v_count int;
  v_name text;
begin
  select name into v_name from dwop.tasks where id = p_task_id;
  with recursive downstream (id) as (
    select unnest(downstream_ids) from dwop.tasks where id = p_task_id
    union
    select x.id from downstream d join dwop.tasks t on t.id = d.id cross join lateral unnest(t.downstream_ids) x (id)
  ),
  marked as (
    update dwop.tasks t
    set status = 'upstream_failed', finished_at = p_now, error = 'blocked by failed upstream ' || v_name
    from downstream d
    where t.id = d.id and t.status = 'pending'
    returning t.workflow_id, t.name
  ),
  logged as (
    insert into dwop.events (workflow_id, kind, task_name, status, at)
    select workflow_id, 'task', name, 'upstream_failed', p_now from marked
    returning 1
  )
  select count(*) into v_count from logged;
  return v_count;
end;
$$;

-- Cancels every task that has not ended, and the workflow. Dispatchers hear `dwop_cancel` and stop
-- the runs they hold; a run that finishes anyway is then ignored by complete_run's compare-and-set.
-- Runs and tasks are locked before the workflow row, the order completions take them in. Cancelling
-- ends a workflow too, so its completion callback is queued as well.
create function dwop.cancel_workflow(p_workflow_id uuid, p_now timestamptz default null)
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
    update dwop.tasks set status = 'cancelled', finished_at = v_now, parked = null
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
    perform dwop.notify_if_parked();
  end if;
  return v_count;
end;
$$;

-- Reruns a failed or cancelled workflow from where it stopped: failed, upstream_failed and cancelled
-- tasks start again with fresh retry budgets; succeeded tasks keep their outputs. Returns the number of
-- tasks reset, or null when the workflow does not exist or has not ended in failure or cancellation.
create function dwop.retry_workflow(p_workflow_id uuid, p_now timestamptz default null)
returns int
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_status text;
  v_count int;
begin
  select status into v_status from dwop.workflows where id = p_workflow_id for no key update;
  if v_status is null or v_status not in ('failed', 'cancelled') then
    return null;
  end if;

  update dwop.tasks
  set status = 'pending', failures = 0, infra_failures = 0, error = null,
      dispatched_at = null, started_at = null, finished_at = null
  where workflow_id = p_workflow_id and status in ('failed', 'upstream_failed', 'cancelled');
  get diagnostics v_count = row_count;

  update dwop.tasks t
  set pending_inputs = (
    select count(*) from dwop.tasks u where u.id = any(t.upstream_ids) and u.status <> 'succeeded'
  )
  where t.workflow_id = p_workflow_id and t.status = 'pending';

  with ready as (
    update dwop.tasks
    set status = 'queued', attempt = attempt + 1, queued_at = v_now
    where workflow_id = p_workflow_id and status = 'pending' and pending_inputs = 0
    returning id, name, attempt, position, owner, priority
  ),
  queued as (
    insert into dwop.outbox (payload, available_at, created_at, owner, priority)
    select jsonb_build_object('taskId', id::text, 'attempt', attempt), v_now, v_now, owner, priority
    from ready order by position
  )
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, at)
  select p_workflow_id, 'task', name, 'queued', attempt, v_now from ready;

  update dwop.workflows set status = 'running', finished_at = null, updated_at = v_now
  where id = p_workflow_id;
  perform dwop.log_event(p_workflow_id, 'workflow', null, 'running', null,
                         jsonb_build_object('retried_tasks', v_count), v_now);
  return v_count;
end;
$$;
