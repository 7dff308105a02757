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
-- The tasks come as one array per column, each in topological order (position i is element i):
--   p_names, p_retries, p_timeouts (null: the default), p_images, p_cpus, p_memories (null: none),
--   p_code_offsets and p_code_lengths (the task's byte range in the workflow's code bundle),
--   p_pools (null: none; an existing pool, see 20261205000200) and p_priorities (null: 0),
--   p_params: a JSON array holding each task's [{"name", "upstream"}].
-- Edges are pairs of positions (p_edge_down[i] reads p_edge_up[i]'s output). Upstreams starting with
-- "inputs." are submit-time inputs, not tasks, and have no edge. Submitting an id that already exists
-- changes nothing and returns false. Task ids are drawn from the sequence first, so each task row is
-- written once, with both directions of its edges. Columns, not a JSON array of tasks: a 100,000-task
-- submit spends its time inserting rows instead of taking JSON apart.
create function dwop.submit_workflow(p_id uuid, p_owner text, p_name text, p_source text,
                                     p_has_requirements boolean, p_inputs text[],
                                     p_names text[], p_params jsonb, p_retries int[], p_timeouts int[],
                                     p_images text[], p_cpus text[], p_memories text[],
                                     p_code_offsets bigint[], p_code_lengths int[],
                                     p_pools text[], p_priorities int[],
                                     p_edge_down int[], p_edge_up int[],
                                     p_backoff_ms int, p_max_infra_retries int,
                                     p_now timestamptz default null)
returns boolean
language plpgsql
-- The edge aggregation of a 100,000-task workflow sorts in memory instead of on disk.
set work_mem = '64MB'
as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_count int := coalesce(cardinality(p_names), 0);
  v_ids bigint[];
  v_roots int;
  v_sequence regclass := pg_get_serial_sequence('dwop.tasks', 'id')::regclass;
  v_unknown text;
begin
  if v_count = 0
     or jsonb_typeof(p_params) is distinct from 'array' or jsonb_array_length(p_params) <> v_count
     or coalesce(cardinality(p_retries), 0) <> v_count or coalesce(cardinality(p_timeouts), 0) <> v_count
     or coalesce(cardinality(p_images), 0) <> v_count or coalesce(cardinality(p_cpus), 0) <> v_count
     or coalesce(cardinality(p_memories), 0) <> v_count
     or coalesce(cardinality(p_code_offsets), 0) <> v_count or coalesce(cardinality(p_code_lengths), 0) <> v_count
     or coalesce(cardinality(p_pools), 0) <> v_count or coalesce(cardinality(p_priorities), 0) <> v_count
     or coalesce(cardinality(p_edge_down), 0) <> coalesce(cardinality(p_edge_up), 0) then
    raise exception 'workflow %: the task columns must all hold one value per task (% names)', p_id, v_count
      using errcode = '22023';
  end if;
  if exists (select 1 from unnest(p_edge_down, p_edge_up) e (down, up)
             where down is null or up is null or down not between 1 and v_count or up not between 1 and v_count
                or down = up) then
    raise exception 'workflow % has an edge that is not between two of its tasks', p_id using errcode = '22023';
  end if;

  -- Pools (20261205000200): a task names an existing pool; the pool rows are held until commit, so a
  -- pool is not deleted under a workflow that uses it.
  select p.name into v_unknown
  from unnest(p_pools) p (name)
  where p.name is not null and not exists (select 1 from dwop.pools o where o.name = p.name)
  limit 1;
  if v_unknown is not null then
    raise exception 'the workflow names pool %, which does not exist (an operator makes it with PUT /pools/%)',
      v_unknown, v_unknown using errcode = 'DW001';
  end if;
  perform 1 from dwop.pools o where o.name = any(p_pools) for key share;

  insert into dwop.workflows (id, owner, name, source, has_requirements, inputs, task_count, created_at, updated_at)
  values (p_id, p_owner, p_name, p_source, p_has_requirements, coalesce(p_inputs, '{}'), v_count, v_now, v_now)
  on conflict (id) do nothing;
  if not found then
    return false;
  end if;

  select array_agg(nextval(v_sequence) order by g) into v_ids from generate_series(1, v_count) g;

  with links as (
    select distinct v_ids[e.down] as down, v_ids[e.up] as up from unnest(p_edge_down, p_edge_up) e (down, up)
  ),
  ups as (select down as id, array_agg(up order by up) as ids from links group by down),
  downs as (select up as id, array_agg(down order by down) as ids from links group by up),
  inserted as (
    insert into dwop.tasks (id, workflow_id, name, position, status, attempt, max_retries, retry_backoff_ms,
                            max_infra_retries, timeout_seconds, options, params, upstream_ids, downstream_ids,
                            pending_inputs, created_at, queued_at, owner, pool, priority)
    overriding system value
    select v_ids[t.ord], p_id, t.name, t.ord, case when u.ids is null then 'queued' else 'pending' end,
           case when u.ids is null then 1 else 0 end,
           coalesce(t.retries, 0), coalesce(p_backoff_ms, 1000), coalesce(p_max_infra_retries, 3), t.timeout,
           jsonb_build_object('image', t.image, 'cpu', t.cpu, 'memory', t.memory,
                              'code', jsonb_build_object('offset', t.code_offset, 'length', t.code_length)),
           coalesce(p_params -> (t.ord::int - 1), '[]'),
           coalesce(u.ids, '{}'), coalesce(d.ids, '{}'), coalesce(cardinality(u.ids), 0),
           v_now, case when u.ids is null then v_now end, p_owner, t.pool, coalesce(t.priority, 0)
    from unnest(p_names, p_retries, p_timeouts, p_images, p_cpus, p_memories, p_code_offsets, p_code_lengths,
                p_pools, p_priorities)
           with ordinality t (name, retries, timeout, image, cpu, memory, code_offset, code_length, pool, priority,
                              ord)
    left join ups u on u.id = v_ids[t.ord]
    left join downs d on d.id = v_ids[t.ord]
    returning id, position, status, priority
  ),
  roots as (
    insert into dwop.outbox (payload, available_at, created_at, owner, priority)
    select jsonb_build_object('taskId', id::text, 'attempt', 1), v_now, v_now, p_owner, priority
    from inserted where status = 'queued'
    order by position
    returning 1
  )
  select count(*) into v_roots from roots;

  if v_roots = 0 then
    raise exception 'workflow % has no root task', p_id using errcode = '22023';
  end if;

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
-- the runs they hold; a run that finishes anyway is then ignored by complete_runs's compare-and-set.
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
