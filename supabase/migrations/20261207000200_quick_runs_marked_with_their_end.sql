-- A run of a process executor (the local one) that ends within the dispatcher's first 100 ms is marked
-- started in the transaction that records its end, not in one of its own (issue 12): a 40-task chain's
-- every run ended before then, and each paid a transaction for the mark beside its run (on 2 cores, the
-- mark's ~0.5 ms of CPU was taken from the run's). The dispatcher passes each such run's job name and
-- how long ago it started (milliseconds, measured by the dispatcher: no clock of another machine is
-- compared with the database's), and the run and its task are marked running as mark_runs_dispatched
-- marks them, with that start.
-- complete_runs_and_start takes them as two more arrays beside its run ids (null where the run was
-- marked already); it is redefined whole, as 20261205001200 left it, with them.

-- Marks runs still 'starting' running, started p_ran_ms[i] milliseconds before p_now, with their job
-- names; a null job name skips its run. Locks the runs in id order, then their tasks in id order, as
-- complete_runs does (a caller may go on to it in the same transaction).
create function dwop.mark_runs_started(p_run_ids bigint[], p_job_names text[], p_ran_ms int[],
  p_now timestamptz)
returns void language plpgsql
set plan_cache_mode = force_generic_plan set enable_seqscan = off
as $$
begin
  if cardinality(p_run_ids) <> cardinality(p_job_names) or cardinality(p_run_ids) <> cardinality(p_ran_ms) then
    raise exception 'mark_runs_started: % runs, % job names, % durations', cardinality(p_run_ids),
      cardinality(p_job_names), cardinality(p_ran_ms) using errcode = '22023';
  end if;
  perform 1 from dwop.runs r where r.id = any(p_run_ids) order by r.id for no key update;
  with given as (
    select distinct on (g.id) g.id, g.job_name, p_now - make_interval(secs => greatest(g.ran_ms, 0) / 1000.0) as at
    from unnest(p_run_ids, p_job_names, p_ran_ms) as g (id, job_name, ran_ms)
    where g.job_name is not null
    order by g.id
  ),
  locked as materialized (
    select r.id, r.status from dwop.runs r where r.id = any(array(select g.id from given g))
  ),
  marked as (
    update dwop.runs r
    set status = 'running', job_name = g.job_name, dispatched_at = g.at, started_at = g.at
    from given g join locked l on l.id = g.id
    where r.id = g.id and l.status = 'starting'
    returning r.task_id, g.at
  ),
  tasks as materialized (
    select t.id, t.status, m.at from marked m join dwop.tasks t on t.id = m.task_id
    order by t.id for no key update of t
  )
  update dwop.tasks t
  set status = 'running', started_at = k.at
  from tasks k
  where t.id = k.id and k.status = 'dispatched';
end;
$$;

drop function dwop.complete_runs_and_start(bigint[], text, text, int, timestamptz);

create function dwop.complete_runs_and_start(p_run_ids bigint[], p_dispatcher_id text, p_executor text,
  p_owner_max_running int default null, p_now timestamptz default null, p_job_names text[] default null,
  p_ran_ms int[] default null)
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
  if p_job_names is not null then
    perform dwop.mark_runs_started(p_run_ids, p_job_names, p_ran_ms, v_now);
  end if;
  select array_agg(c.id) into v_runs from dwop.complete_runs(p_run_ids, v_now) as c (id);
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
