-- The life of one attempt: claimed from the outbox, started by a dispatcher, completed or failed.
-- Each transition is a compare-and-set: a call that finds the row in another state changes nothing.

-- Claims up to p_batch_size due, unleased outbox rows of p_topic for p_claimer_id. Owners take turns
-- (fair share, 20261205000200): each owner's rows are ranked by priority (higher first) then age, and the
-- batch takes every owner's first row, then every owner's second, and so on; so one owner's thousands
-- of ready tasks do not go ahead of another's one. The owners are found by a skip scan of the partial
-- index outbox_unpublished_fair, each owner's rows by a walk of it. The lease
-- lets another claimer take the rows again if this one dies before marking them published (task rows)
-- or recording the try (callbacks, record_callback_result of 20261126000420). Each row comes with which
-- try this claim is (from 1), and for a 'workflow.callback' row where to send it: the URL and signing
-- secret of its submission (of 20261126000400; a callback row whose submission is gone stays leased and
-- unanswered until its lease ends). Rows that another claimer is claiming at that moment are skipped, so a
-- batch can be smaller than the rows due.
create function dwop.claim_outbox_events(p_claimer_id text, p_batch_size int, p_lease_seconds int default 30,
                                         p_now timestamptz default null, p_topic text default 'task.ready')
returns table (id bigint, topic text, payload jsonb, attempt int, callback_url text, callback_secret text)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with recursive owners (owner) as (
    (select o.owner from dwop.outbox o
     where o.topic = p_topic and o.published_at is null order by o.owner limit 1)
    union all
    select (select o.owner from dwop.outbox o
            where o.topic = p_topic and o.published_at is null and o.owner > w.owner
            order by o.owner limit 1)
    from owners w where w.owner is not null
  ),
  ranked as (
    select c.id, c.priority, row_number() over (partition by w.owner order by c.priority desc, c.id) as turn
    from owners w
    cross join lateral (
      select o.id, o.priority from dwop.outbox o
      where o.topic = p_topic and o.published_at is null and o.owner = w.owner
        and o.available_at <= v_now and (o.lease_until is null or o.lease_until < v_now)
      order by o.priority desc, o.id
      limit p_batch_size
    ) c
    where w.owner is not null
  ),
  due as (
    select k.id, k.turn, k.priority from ranked k order by k.turn, k.priority desc, k.id limit p_batch_size
  ),
  -- Locked by primary key, their state tested after the lock (see complete_runs: with the test in the
  -- scan, the planner joined the due rows to a walk of every unpublished row, 0.2 s a claim).
  locked as materialized (
    select o.id, o.published_at, o.lease_until from dwop.outbox o
    where o.id = any(array(select d.id from due d))
    for update of o skip locked
  ),
  claimed as (
    update dwop.outbox o
    set claimed_by = p_claimer_id, lease_until = v_now + make_interval(secs => p_lease_seconds),
        claim_count = o.claim_count + 1
    from locked l
    where o.id = l.id and l.published_at is null and (l.lease_until is null or l.lease_until < v_now)
    returning o.id, o.topic, o.payload, o.delivery_attempts
  )
  select c.id, c.topic, c.payload, c.delivery_attempts + 1, s.callback_url, s.callback_secret
  from claimed c
  join due d on d.id = c.id
  left join dwop.submissions s
    on c.topic = 'workflow.callback' and s.workflow_id = (c.payload->>'workflowId')::uuid
  where c.topic <> 'workflow.callback' or s.workflow_id is not null
  order by d.turn, d.priority desc, c.id;
end;
$$;

-- Marks rows published once the broker confirmed them. Only the claimer holding the lease may do so,
-- so a claimer whose lease ran out does not mark rows that another claimer now holds.
create function dwop.mark_outbox_published(p_claimer_id text, p_ids bigint[], p_now timestamptz default null)
returns int
language sql as $$
  with marked as (
    update dwop.outbox set published_at = coalesce(p_now, now()), lease_until = null
    where id = any(p_ids) and published_at is null and claimed_by = p_claimer_id
    returning 1
  )
  select count(*)::int from marked;
$$;

-- Earliest time a not-yet-due unpublished row becomes due (for the claimer's next wake-up).
create function dwop.next_outbox_due(p_now timestamptz default null)
returns timestamptz
language sql stable as $$
  select min(greatest(available_at, coalesce(lease_until, available_at)))
  from dwop.outbox where published_at is null;
$$;

-- The run's code started (the pod is running).
create function dwop.mark_run_running(p_run_id bigint, p_now timestamptz default null)
returns boolean
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_task_id bigint;
begin
  update dwop.runs set status = 'running', started_at = coalesce(started_at, v_now)
  where id = p_run_id and status in ('starting', 'dispatched')
  returning task_id into v_task_id;
  if not found then
    return false;
  end if;
  update dwop.tasks set status = 'running', started_at = coalesce(started_at, v_now)
  where id = v_task_id and status = 'dispatched';
  return true;
end;
$$;

-- Records the success of many runs in one transaction: marks each task succeeded, counts down its
-- dependents' pending inputs, queues the ones that became ready (outbox rows) and ends workflows with
-- nothing left to run. Returns the run ids whose success this call recorded; a run that was already
-- finished, cancelled or superseded is left out.
create function dwop.complete_runs(p_run_ids bigint[], p_now timestamptz default null)
returns setof bigint
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_runs bigint[];
  v_tasks bigint[];
  v_inputs bigint[];
  v_workflow uuid;
begin
  -- Every row here is found by its primary key and locked before its state is tested, and the tests sit
  -- outside the scans (materialized CTEs): a state predicate in a scan lets the planner pick a partial
  -- index of open rows (tasks_open, runs_active_by_owner) by statistics taken while the queue was empty,
  -- and walk it whole for each row. Once the tables had been analyzed between two workflows, a 2,000-task
  -- fan-out's root success compared 2 million pairs that way (0.45 s) and every batch after it thousands.
  -- Runs locked in id order, as mark_runs_dispatched locks them: a dispatcher's two batches that share runs
  -- (a quick run ends before its dispatch is marked) wait for each other instead of deadlocking, which
  -- cost a second (deadlock_timeout) and a retry each time. Then their tasks, in id order.
  perform 1 from dwop.runs r where r.id = any(p_run_ids) order by r.id for no key update;
  with found as materialized (
    select r.id, r.task_id, r.status as run_status, r.attempt, t.status as task_status, t.attempt as task_attempt
    from dwop.runs r join dwop.tasks t on t.id = r.task_id
    where r.id = any(p_run_ids)
    order by t.id
    for no key update of t
  )
  select array_agg(f.id order by f.task_id), array_agg(f.task_id order by f.task_id) into v_runs, v_tasks
  from found f
  where f.run_status in ('starting', 'dispatched', 'running') and f.task_attempt = f.attempt
    and f.task_status in ('dispatched', 'running');
  if v_runs is null then
    return;
  end if;

  update dwop.runs r
  set status = 'succeeded', finished_at = v_now, started_at = coalesce(r.started_at, v_now)
  where r.id = any(v_runs);
  with succeeded as (
    update dwop.tasks t
    set status = 'succeeded', finished_at = v_now, started_at = coalesce(t.started_at, v_now), error = null
    where t.id = any(v_tasks)
    returning t.workflow_id, t.name, t.attempt
  )
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, at)
  select workflow_id, 'task', name, 'succeeded', attempt, v_now from succeeded;

  -- Each dependent once per input these successes give it. Fan-in tasks are counted down by concurrent
  -- calls: lock them in one order so calls never deadlock.
  select array_agg(d.id) into v_inputs
  from dwop.tasks t cross join lateral unnest(t.downstream_ids) d (id) where t.id = any(v_tasks);
  with counts as (
    select u.id, count(*)::int as n from unnest(v_inputs) as u (id) group by u.id
  ),
  waiting as materialized (
    select d.id, d.status, d.pending_inputs from dwop.tasks d where d.id = any(v_inputs)
    order by d.id for no key update
  ),
  counted as (
    update dwop.tasks d
    set pending_inputs = w.pending_inputs - c.n,
        status = case when w.pending_inputs = c.n then 'queued' else d.status end,
        attempt = case when w.pending_inputs = c.n then d.attempt + 1 else d.attempt end,
        queued_at = case when w.pending_inputs = c.n then v_now else d.queued_at end
    from counts c join waiting w on w.id = c.id
    where d.id = c.id and w.status = 'pending'
    returning d.id, d.status, d.attempt, d.workflow_id, d.name, d.position, d.owner, d.priority
  ),
  queued as (
    insert into dwop.outbox (payload, available_at, created_at, owner, priority)
    select jsonb_build_object('taskId', id::text, 'attempt', attempt), v_now, v_now, owner, priority
    from counted where status = 'queued' order by position
  )
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, at)
  select workflow_id, 'task', name, 'queued', attempt, v_now from counted where status = 'queued';

  for v_workflow in
    select distinct t.workflow_id from dwop.tasks t where t.id = any(v_tasks) order by 1
  loop
    perform dwop.finish_workflow_if_done(v_workflow, v_now);
  end loop;
  perform dwop.notify_if_parked();

  return query select unnest(v_runs);
end;
$$;

-- Records a failed attempt and decides what follows (the seed design's name and first two parameters).
-- Infrastructure failures (lost, evicted, image_pull, unschedulable, oom_killed) spend the task's infrastructure
-- budget; others spend its retries. With budget left the task is queued again as the next attempt after
-- an exponential backoff; otherwise it fails and everything waiting downstream becomes upstream_failed.
-- Returns 'retried', 'failed', or 'ignored' when the run was no longer active.
create function dwop.increase_attempt(p_run_id bigint, p_error_msg text, p_reason text default 'exit_code',
                                      p_exit_code int default null, p_log_tail text default null,
                                      p_non_retryable boolean default false, p_now timestamptz default null)
returns text
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_run dwop.runs;
  v_task dwop.tasks;
  -- 'oom_killed' too: the node ran out of memory for the limit the task was given, which retrying
  -- (elsewhere, later) may cure. 'timeout' and 'exit_code' spend the task's own retries.
  v_infra boolean := p_reason in ('lost', 'evicted', 'image_pull', 'unschedulable', 'oom_killed');
  v_spent int;
  v_retry boolean;
  v_delay_ms bigint;
begin
  update dwop.runs
  set status = case when p_reason = 'lost' then 'lost' else 'failed' end, finished_at = v_now,
      failure_reason = p_reason, error = p_error_msg, exit_code = p_exit_code, log_tail = p_log_tail
  where id = p_run_id and status in ('starting', 'dispatched', 'running')
  returning * into v_run;
  if not found then
    return 'ignored';
  end if;
  -- The run's pool slot and its owner's share are free again.
  perform dwop.notify_if_parked();

  select * into v_task from dwop.tasks
  where id = v_run.task_id and attempt = v_run.attempt and status in ('dispatched', 'running')
  for no key update;
  if not found then
    return 'ignored';
  end if;

  if v_infra then
    v_spent := v_task.infra_failures + 1;
    v_retry := v_spent <= v_task.max_infra_retries;
  else
    v_spent := v_task.failures + 1;
    v_retry := not p_non_retryable and v_spent <= v_task.max_retries;
  end if;

  update dwop.tasks
  set failures = failures + case when v_infra then 0 else 1 end,
      infra_failures = infra_failures + case when v_infra then 1 else 0 end,
      error = p_error_msg
  where id = v_task.id;

  if v_retry then
    v_delay_ms := least(v_task.retry_backoff_ms::bigint * (2 ^ (v_spent - 1))::bigint, 300000);
    update dwop.tasks
    set status = 'queued', attempt = attempt + 1, queued_at = v_now, dispatched_at = null, started_at = null
    where id = v_task.id;
    insert into dwop.outbox (payload, available_at, created_at, owner, priority)
    values (jsonb_build_object('taskId', v_task.id::text, 'attempt', v_task.attempt + 1),
            v_now + make_interval(secs => v_delay_ms / 1000.0), v_now, v_task.owner, v_task.priority);
    perform dwop.log_event(v_task.workflow_id, 'task', v_task.name, 'retrying', v_task.attempt,
                           jsonb_build_object('reason', p_reason, 'exit_code', p_exit_code,
                                              'error', p_error_msg, 'delay_ms', v_delay_ms), v_now);
    return 'retried';
  end if;

  update dwop.tasks set status = 'failed', finished_at = v_now where id = v_task.id;
  perform dwop.log_event(v_task.workflow_id, 'task', v_task.name, 'failed', v_task.attempt,
                         jsonb_build_object('reason', p_reason, 'exit_code', p_exit_code, 'error', p_error_msg), v_now);
  perform dwop.fail_downstream(v_task.id, v_now);
  perform dwop.finish_workflow_if_done(v_task.workflow_id, v_now);
  return 'failed';
end;
$$;

-- A dispatcher says it is alive.
create function dwop.heartbeat_dispatcher(p_id text, p_executor text, p_now timestamptz default null)
returns void
language sql as $$
  insert into dwop.dispatchers (id, executor, started_at, heartbeat_at)
  values (p_id, p_executor, coalesce(p_now, now()), coalesce(p_now, now()))
  on conflict (id) do update set heartbeat_at = excluded.heartbeat_at;
$$;

-- Retries each of p_run_ids that is still active as lost (an infrastructure failure, so the task's
-- infrastructure budget pays), with p_error as its error, in the order given. Returns how many it retried
-- or failed; a run that had already ended is left alone. The one loop of both reapers below.
create function dwop.retry_runs_as_lost(p_run_ids bigint[], p_error text, p_now timestamptz default null)
returns int
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_run bigint;
  v_count int := 0;
begin
  foreach v_run in array coalesce(p_run_ids, '{}') loop
    if dwop.increase_attempt(v_run, p_error, 'lost', null, null, false, v_now) <> 'ignored' then
      v_count := v_count + 1;
    end if;
  end loop;
  return v_count;
end;
$$;

-- Retries as lost every active local run whose dispatcher is p_own_id (a restarted dispatcher reclaiming
-- its own) or has not been heard from for p_stale_seconds. Local runs die with their dispatcher, so
-- nothing else would ever finish them. Returns how many runs were reaped.
create function dwop.reap_lost_runs(p_stale_seconds int, p_own_id text default null, p_now timestamptz default null)
returns int
language sql as $$
  select dwop.retry_runs_as_lost(array(
    select r.id from dwop.runs r
    left join dwop.dispatchers d on d.id = r.dispatcher_id
    where r.status in ('starting', 'dispatched', 'running') and r.executor = 'local'
      and (r.dispatcher_id = p_own_id
           or d.id is null
           or d.heartbeat_at < coalesce(p_now, now()) - make_interval(secs => p_stale_seconds))
    order by r.id), 'the dispatcher running this attempt stopped', p_now);
$$;
