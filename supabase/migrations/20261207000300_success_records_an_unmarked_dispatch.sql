-- A run that ends before its dispatch is recorded is recorded by its success alone. A dispatcher marks each
-- run dispatched (mark_runs_dispatched) once the executor has taken it, in batches, beside the run; a run
-- that ends while its mark still waits for the batch before it (a no-op run always, a short one under
-- load) used to be marked, then completed: two transactions over the same rows, the second waiting for
-- the first's locks. The dispatcher now takes such a run out of the marks and hands its job name to the
-- success: complete_runs records the job name and the dispatch time (the success's, when none was
-- recorded) in the update that ends the run. A run completed before its mark (still possible when the
-- mark's batch was already on its way) now gets a dispatch time too, where it had none.
--
-- p_job_names is parallel to p_run_ids (null for a run marked already) and last, with a default, so a
-- dispatcher of the previous version calls either function as before during a rolling update. The
-- functions are dropped and made again (a new argument would make an overload); migration 20261204000300's
-- default privileges keep them from PUBLIC, as test/schema.privileges checks.

drop function dwop.complete_runs_and_start(bigint[], text, text, int, timestamptz);
drop function dwop.complete_runs(bigint[], timestamptz);

create function dwop.complete_runs(p_run_ids bigint[], p_now timestamptz default null,
  p_job_names text[] default null)
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

  -- A run not marked dispatched (its mark taken back by the dispatcher, or not yet made) is given its job
  -- name here, and the success's time as its dispatch.
  update dwop.runs r
  set status = 'succeeded', finished_at = greatest(v_now, r.started_at),
      started_at = coalesce(r.started_at, v_now), dispatched_at = coalesce(r.dispatched_at, v_now),
      job_name = coalesce(r.job_name, g.job_name)
  from (select distinct on (u.id) u.id, u.job_name from unnest(p_run_ids, p_job_names) as u (id, job_name)
        order by u.id, u.job_name) g
  where r.id = g.id and r.id = any(v_runs);
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
  -- Each dependent is found by its primary key from its count (the count the outer side, so each is
  -- looked up once), and carries that count on: joining the counts to the locked rows instead, the planner
  -- (which guesses 10 rows for either) walked every count for each locked row, and a 20,000-task fan-out's
  -- root success took 53 s (migration 20261205001200).
  with counts as (
    select u.id, count(*)::int as n from unnest(v_inputs) as u (id) group by u.id
  ),
  waiting as materialized (
    select d.id, d.status, d.pending_inputs, c.n from counts c join dwop.tasks d on d.id = c.id
    order by d.id for no key update of d
  ),
  counted as (
    update dwop.tasks d
    set pending_inputs = w.pending_inputs - w.n,
        status = case when w.pending_inputs = w.n then 'queued' else d.status end,
        attempt = case when w.pending_inputs = w.n then d.attempt + 1 else d.attempt end,
        queued_at = case when w.pending_inputs = w.n then v_now else d.queued_at end
    from waiting w
    where d.id = w.id and w.status = 'pending'
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

create function dwop.complete_runs_and_start(p_run_ids bigint[], p_dispatcher_id text, p_executor text,
  p_owner_max_running int default null, p_now timestamptz default null, p_job_names text[] default null)
returns table (completed_id bigint, run_id bigint, task_id bigint, attempt int, workflow_id uuid, task_name text,
               params jsonb, options jsonb, timeout_seconds int, has_requirements boolean)
language plpgsql
set plan_cache_mode = force_generic_plan set enable_seqscan = off
as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  -- Rows complete_runs writes get ids above this one: the outbox update reads only that end of the key.
  v_last bigint := (select max(o.id) from dwop.outbox o);
  v_runs bigint[];
  v_ready bigint[];
  v_attempts int[];
begin
  perform set_config('dwop.outbox_quiet', 'on', true);
  select array_agg(c.id) into v_runs from dwop.complete_runs(p_run_ids, v_now, p_job_names) as c (id);
  if v_runs is not null then
    return query select r.id, null::bigint, null::bigint, null::int, null::uuid, null::text, null::jsonb,
                        null::jsonb, null::int, null::boolean
                 from unnest(v_runs) as r (id);
    -- The tasks these successes queued, highest priority first. The dependents are gathered into one
    -- array first and read by primary key: joined to the unnest of downstream_ids, the planner (which
    -- guesses 10 rows for an unnest) matched each of a 2,000-task fan-out's ready tasks against all 2,000 ids.
    -- Found by primary key alone, then tested (a materialized CTE): with the state tests in the scan, the
    -- planner walked the index of queued tasks and tested each against the whole array, which for the
    -- root of a 20,000-task fan-out took 0.7 s (migration 20261205001200).
    with dependents as materialized (
      select dt.id, dt.attempt, dt.priority, dt.status, dt.queued_at
      from dwop.tasks dt
      where dt.id = any(array(select d.id
                              from dwop.runs r
                              join dwop.tasks t on t.id = r.task_id
                              cross join lateral unnest(t.downstream_ids) as d (id)
                              where r.id = any(v_runs)))
    )
    select array_agg(x.id order by x.priority desc, x.id), array_agg(x.attempt order by x.priority desc, x.id)
    into v_ready, v_attempts
    from (
      select f.id, f.attempt, f.priority
      from dependents f
      where f.status = 'queued' and f.queued_at = v_now
      order by f.priority desc, f.id
      limit cardinality(v_runs)
    ) x;
  end if;
  if v_ready is not null then
    update dwop.outbox o set published_at = v_now, claimed_by = p_dispatcher_id, lease_until = null
    where o.id > coalesce(v_last, 0) and o.topic = 'task.ready' and o.published_at is null
      and (o.payload ->> 'taskId')::bigint = any(v_ready);
    return query
    select null::bigint, s.run_id, v_ready[s.item], v_attempts[s.item], s.workflow_id, s.task_name, s.params,
           s.options, s.timeout_seconds, s.has_requirements
    from dwop.start_runs(v_ready, v_attempts, p_dispatcher_id, p_executor, v_now, p_owner_max_running) s
    where s.created;
  end if;
  perform set_config('dwop.outbox_quiet', 'off', true);
  if exists (select 1 from dwop.outbox o where o.id > coalesce(v_last, 0) and o.published_at is null) then
    perform pg_notify('dwop_outbox', '');
  end if;
end;
$$;
