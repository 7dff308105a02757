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
  v_run record;
  -- Each item's owner and pool, and per owner with a cap / per pool what admit_task would look up for
  -- every task: counted once for the batch (an owner's room shrinks as the batch starts its runs).
  v_item_owners text[];
  v_item_pools text[];
  v_owners text[];
  v_caps int[];
  v_rooms int[];
  v_pools text[];
  v_pool_sizes int[];
  v_o int;
  v_p int;
begin
  if coalesce(cardinality(p_task_ids), 0) <> coalesce(cardinality(p_attempts), 0) then
    raise exception 'start_runs: % task ids but % attempts', cardinality(p_task_ids), cardinality(p_attempts)
      using errcode = '22023';
  end if;
  select array_agg(t.owner order by g.i), array_agg(t.pool order by g.i) into v_item_owners, v_item_pools
  from generate_subscripts(p_task_ids, 1) as g (i) left join dwop.tasks t on t.id = p_task_ids[g.i];
  select array_agg(c.owner), array_agg(c.cap), array_agg(c.cap - dwop.owner_running(c.owner))
  into v_owners, v_caps, v_rooms
  from (select o.owner, dwop.owner_max_running(o.owner, p_owner_max_running) as cap
        from (select distinct u.owner from unnest(v_item_owners) as u (owner) where u.owner is not null) o) c
  where c.cap is not null;
  select array_agg(p.name), array_agg(p.slots) into v_pools, v_pool_sizes
  from dwop.pools p
  where p.name in (select u.pool from unnest(v_item_pools) as u (pool)) and not dwop.pool_shrunk_held(p.name, p.slots);

  for v_item in
    select i from generate_subscripts(p_task_ids, 1) as g (i) order by p_task_ids[i], p_attempts[i], i
  loop
    v_o := array_position(v_owners, v_item_owners[v_item]);
    v_p := array_position(v_pools, v_item_pools[v_item]);
    for v_run in
      select * from dwop.start_run(p_task_ids[v_item], p_attempts[v_item], p_dispatcher_id, p_executor, v_now,
                                   p_owner_max_running, v_caps[v_o], v_rooms[v_o], v_pool_sizes[v_p])
    loop
      item := v_item;
      run_id := v_run.run_id;
      created := v_run.created;
      workflow_id := v_run.workflow_id;
      task_name := v_run.task_name;
      params := v_run.params;
      options := v_run.options;
      timeout_seconds := v_run.timeout_seconds;
      has_requirements := v_run.has_requirements;
      return next;
      if v_run.created and v_o is not null then
        v_rooms[v_o] := v_rooms[v_o] - 1;
      end if;
    end loop;
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
  -- In id order, as complete_runs locks them (a batch of both can share runs).
  perform 1 from dwop.runs r where r.id = any(p_run_ids) order by r.id for no key update;
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

