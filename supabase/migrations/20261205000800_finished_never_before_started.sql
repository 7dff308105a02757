-- A run's and its task's finished_at is never before their started_at. A run can end before its start is
-- recorded (a quick body's exit beats the dispatcher's mark_runs_dispatched), and the success or failure
-- that records its end may then be a transaction that began before the mark's and waited for its row lock:
-- its now() is earlier than the started_at the mark wrote, and the run showed a negative duration
-- ("load succeeded -0.01s"). The end is now at least the recorded start: such a run took no measurable time
-- after its start was recorded. Redefined whole, with the settings 20261205000500 and 20261205000700 gave.

create or replace function dwop.complete_runs(p_run_ids bigint[], p_now timestamptz default null)
returns setof bigint language plpgsql
set plan_cache_mode = force_generic_plan set enable_seqscan = off
as $$
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
  set status = 'succeeded', finished_at = greatest(v_now, r.started_at),
      started_at = coalesce(r.started_at, v_now)
  where r.id = any(v_runs);
  with succeeded as (
    update dwop.tasks t
    set status = 'succeeded', finished_at = greatest(v_now, t.started_at), started_at = coalesce(t.started_at, v_now),
        error = null
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

create or replace function dwop.increase_attempt(p_run_id bigint, p_error_msg text, p_reason text default 'exit_code',
  p_exit_code int default null, p_log_tail text default null, p_non_retryable boolean default false,
  p_now timestamptz default null)
returns text language plpgsql as $$
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
  set status = case when p_reason = 'lost' then 'lost' else 'failed' end, finished_at = greatest(v_now, started_at),
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

  update dwop.tasks set status = 'failed', finished_at = greatest(v_now, started_at) where id = v_task.id;
  perform dwop.log_event(v_task.workflow_id, 'task', v_task.name, 'failed', v_task.attempt,
                         jsonb_build_object('reason', p_reason, 'exit_code', p_exit_code, 'error', p_error_msg), v_now);
  perform dwop.fail_downstream(v_task.id, v_now);
  perform dwop.finish_workflow_if_done(v_task.workflow_id, v_now);
  return 'failed';
end;
$$;
