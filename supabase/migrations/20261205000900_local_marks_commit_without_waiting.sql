-- A local run's dispatch is committed without waiting for the disk (synchronous_commit off for the mark's
-- own transaction). Recording that a local run started (its status 'running', its pid as job name, its
-- start time) is no promise anything rests on: the run is held by the dispatcher whose child it is, which
-- records its end from any active status, and the run is lost with that dispatcher whatever its row says.
-- What a crash of the database itself can lose is at most the last few marks, never another transaction's
-- commit (the WAL is flushed in order): such a run reads 'starting' until its end is recorded. On a 40-task
-- chain the mark's flush (0.5 ms at the median, 2.3 ms at p90 here) ran beside each task's run and held the
-- run's row lock while it waited, which the success's transaction then waited for: 15.1-15.9 -> 13.3-14.8 ms
-- a task (bench/chain.ts, three pairs). A cluster run's mark (p_started false) stays synchronous: its Job
-- outlives a dispatcher, and a redelivery resumes a run still 'starting' by creating its Job again.

create or replace function dwop.mark_runs_dispatched(p_run_ids bigint[], p_job_names text[],
  p_started boolean default false, p_now timestamptz default null)
returns setof bigint language plpgsql
set plan_cache_mode = force_generic_plan set enable_seqscan = off
as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  if p_started then
    perform set_config('synchronous_commit', 'off', true); -- this transaction only
  end if;
  if coalesce(cardinality(p_run_ids), 0) <> coalesce(cardinality(p_job_names), 0) then
    raise exception 'mark_runs_dispatched: % runs but % job names', cardinality(p_run_ids),
      cardinality(p_job_names) using errcode = '22023';
  end if;
  -- In id order, as complete_runs locks them (a batch of both can share runs). Their state is tested
  -- outside the scans, and a task's in its update's SET (see complete_runs).
  perform 1 from dwop.runs r where r.id = any(p_run_ids) order by r.id for no key update;
  return query
  with given as (
    select distinct on (g.id) g.id, g.job_name
    from unnest(p_run_ids, p_job_names) as g (id, job_name) order by g.id
  ),
  locked as materialized (
    select r.id, r.status from dwop.runs r where r.id = any(p_run_ids)
  ),
  marked as (
    update dwop.runs r
    set status = case when p_started then 'running' else 'dispatched' end, job_name = g.job_name,
        dispatched_at = v_now, started_at = case when p_started then v_now end
    from given g join locked l on l.id = g.id
    where r.id = g.id and l.status = 'starting'
    returning r.id, r.task_id
  ),
  running as (
    update dwop.tasks t
    set status = case when t.status = 'dispatched' then 'running' else t.status end,
        started_at = case when t.status = 'dispatched' then v_now else t.started_at end
    from marked m
    where p_started and t.id = m.task_id
  )
  select m.id from marked m;
end;
$$;
