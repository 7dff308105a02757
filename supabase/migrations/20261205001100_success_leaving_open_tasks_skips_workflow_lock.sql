-- A success no longer takes its workflow's row lock when it leaves a task of that workflow open: each
-- task of a chain but the last, each input of a fan-in but the one that queues it. finish_workflow_if_done
-- locks the workflow's row until commit, so every success of a workflow waited for the commit of the one
-- before it (issue 12: "keep a workflow's completions from serializing on one row lock"), and its test
-- cost each of a chain's successes ~0.4 ms (20 ms for 53 batches in a 2,000-task fan-out,
-- pg_stat_statements).
--
-- Why skipping it is safe: a workflow is done when none of its tasks is open. When this transaction counts
-- down a pending task D (its status test is in the update), D is still open when it commits: pending, or
-- queued (and maybe started, by complete_runs_and_start). Every transition that ends D (its success, its
-- failure, its upstream's failure marking it upstream_failed, a cancel) updates D's row, so it waits for
-- this transaction's commit and sees it; the transaction that ends the workflow's last open task still
-- takes the lock and looks, as before. Redefined whole, with the settings of 20261205000500 and
-- 20261205000700 and the end times of 20261205000800.

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
  v_continuing uuid[]; -- workflows with a task this batch counted down and left open
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
  ),
  logged as (
    insert into dwop.events (workflow_id, kind, task_name, status, attempt, at)
    select workflow_id, 'task', name, 'queued', attempt, v_now from counted where status = 'queued'
  )
  select coalesce(array_agg(distinct c.workflow_id), '{}') into v_continuing from counted c;

  -- A workflow whose task this batch counted down is not done: that task is still open (pending or
  -- queued), and whatever ends it later locks its row, so it waits for this transaction's commit, and
  -- then looks (migration 20261205001100 says why). Only the others are looked at, under their workflow's row lock.
  for v_workflow in
    select distinct t.workflow_id from dwop.tasks t
    where t.id = any(v_tasks) and not (t.workflow_id = any(v_continuing)) order by 1
  loop
    perform dwop.finish_workflow_if_done(v_workflow, v_now);
  end loop;
  perform dwop.notify_if_parked();

  return query select unnest(v_runs);
end;
$$;

