-- A dispatcher's per-delivery steps, in batches (issue 12, throughput): the deliveries that arrive while
-- one batch is being written go together in the next, as complete_runs already does for successes. Each
-- is one transaction (one commit, one round trip) for the whole batch; every row is still a
-- compare-and-set, so a batch answers each of its items as the one-item call would.

-- start_run (20261126000300) for many deliveries at once. Returns one row per item that start_run
-- answers with a row, carrying the item's 1-based position in the arrays (`item`); an item without a row
-- is stale or parked, as with start_run. The items are taken in task order, so two batches that share
-- tasks (a duplicate delivery to two dispatchers) lock their task rows in the same order. A (task, attempt)
-- given twice in one batch is created once: the second finds the first's run (created = false).
create function dwop.start_runs(p_task_ids bigint[], p_attempts int[], p_dispatcher_id text, p_executor text,
                                p_now timestamptz default null, p_owner_max_running int default null)
returns table (item int, run_id bigint, created boolean, workflow_id uuid, task_name text, params jsonb,
               options jsonb, timeout_seconds int, has_requirements boolean)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_item int;
begin
  if coalesce(cardinality(p_task_ids), 0) <> coalesce(cardinality(p_attempts), 0) then
    raise exception 'start_runs: % task ids but % attempts', cardinality(p_task_ids), cardinality(p_attempts)
      using errcode = '22023';
  end if;
  for v_item in
    select i from generate_subscripts(p_task_ids, 1) as g (i) order by p_task_ids[i], p_attempts[i], i
  loop
    return query
    select v_item, s.* from dwop.start_run(p_task_ids[v_item], p_attempts[v_item], p_dispatcher_id, p_executor,
                                           v_now, p_owner_max_running) s;
  end loop;
end;
$$;

-- mark_run_dispatched (20261126000300) for many runs at once: each run still 'starting' gets its job name
-- and becomes 'dispatched' (or 'running' where p_started says its code is already starting, and its task
-- with it). Returns the ids of the runs it marked; a run that moved on meanwhile (finished, cancelled,
-- reaped) is left out and left alone.
create function dwop.mark_runs_dispatched(p_run_ids bigint[], p_job_names text[], p_started boolean default false,
                                          p_now timestamptz default null)
returns setof bigint
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  if coalesce(cardinality(p_run_ids), 0) <> coalesce(cardinality(p_job_names), 0) then
    raise exception 'mark_runs_dispatched: % runs but % job names', cardinality(p_run_ids),
      cardinality(p_job_names) using errcode = '22023';
  end if;
  return query
  with given as (
    select distinct on (g.id) g.id, g.job_name
    from unnest(p_run_ids, p_job_names) as g (id, job_name) order by g.id
  ),
  marked as (
    update dwop.runs r
    set status = case when p_started then 'running' else 'dispatched' end, job_name = g.job_name,
        dispatched_at = v_now, started_at = case when p_started then v_now end
    from given g
    where r.id = g.id and r.status = 'starting'
    returning r.id, r.task_id
  ),
  running as (
    update dwop.tasks t set status = 'running', started_at = v_now
    from marked m
    where p_started and t.id = m.task_id and t.status = 'dispatched'
  )
  select m.id from marked m;
end;
$$;

