-- A dispatcher's per-delivery steps, in batches (issue 12, throughput): the deliveries that arrive while
-- one batch is being written go together in the next, as complete_runs already does for successes. Each
-- is one transaction (one commit, one round trip) for the whole batch; every row is still a
-- compare-and-set, so a batch answers each of its items as the one-item call would.

-- Records the runs of many deliveries at once, for a dispatcher (each item as start_run, 20261126000300,
-- describes): one row per item answered with a row, carrying the item's 1-based position in the arrays
-- (`item`); an item without a row is stale or parked. A (task, attempt) given twice in one batch is
-- created once: the second finds the first's run (created = false). The items are taken in task order,
-- so two batches that share tasks (a duplicate delivery to two dispatchers) lock their task rows in the
-- same order. This is the one admission step (pools and owner caps, issue 14): per owner with a cap and
-- per pool it counts once what may start and takes that many free slot rows in one statement
-- (FOR UPDATE SKIP LOCKED, so two dispatchers never take the same slot and a limit holds exactly). Each
-- slot goes to the next task that starts a run: one a task does not use (stale, duplicate) passes on,
-- and a task left without one is parked. The Kubernetes executor's start_cluster_run calls it with one item.
create function dwop.start_runs(p_task_ids bigint[], p_attempts int[], p_dispatcher_id text, p_executor text,
                                p_now timestamptz default null, p_owner_max_running int default null)
returns table (item int, run_id bigint, created boolean, workflow_id uuid, task_name text, params jsonb,
               options jsonb, timeout_seconds int, has_requirements boolean)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_item int;
  v_run record;
  v_group record;
  -- Each item's owner and pool. The owners with a cap (v_owners) and the pools (v_pools), each with the
  -- slots the batch took for it: all of them in one array (v_slots), each owner's and pool's from
  -- v_next (the next one to give) to v_end (exclusive); the pools' entries in v_next and v_end come
  -- after the owners'.
  v_item_owners text[];
  v_item_pools text[];
  v_owners text[] := '{}';
  v_pools text[] := '{}';
  v_slots int[] := '{}';
  v_next int[] := '{}';
  v_end int[] := '{}';
  v_taken int[];
  v_o int;
  v_p int;
  v_owner_slot int;
  v_pool_slot int;
  v_wait text;
begin
  if coalesce(cardinality(p_task_ids), 0) <> coalesce(cardinality(p_attempts), 0) then
    raise exception 'start_runs: % task ids but % attempts', cardinality(p_task_ids), cardinality(p_attempts)
      using errcode = '22023';
  end if;
  select array_agg(t.owner order by g.i), array_agg(t.pool order by g.i) into v_item_owners, v_item_pools
  from generate_subscripts(p_task_ids, 1) as g (i) left join dwop.tasks t on t.id = p_task_ids[g.i];

  -- An owner may start as many as its cap leaves room for (active runs counted, whichever slot they hold).
  for v_group in
    select c.owner, c.cap, c.n from (
      select u.owner, count(*)::int as n, dwop.owner_max_running(u.owner, p_owner_max_running) as cap
      from unnest(v_item_owners) as u (owner) where u.owner is not null group by u.owner
    ) c where c.cap is not null order by c.owner
  loop
    perform dwop.make_owner_slots(v_group.owner, v_group.cap);
    select coalesce(array_agg(x.slot order by x.slot), '{}') into v_taken from (
      select s.slot from dwop.owner_slots s
      where s.owner = v_group.owner and s.slot < v_group.cap and (s.run_id is null or dwop.run_ended(s.run_id))
      order by s.slot
      limit greatest(0, least(v_group.n, v_group.cap - dwop.owner_running(v_group.owner)))
      for update of s skip locked
    ) x;
    v_owners := v_owners || v_group.owner;
    v_next := v_next || (cardinality(v_slots) + 1);
    v_slots := v_slots || v_taken;
    v_end := v_end || (cardinality(v_slots) + 1);
  end loop;
  -- A pool gives its free slots below its size. When it shrank under its running tasks, slots above its
  -- size still held by a run count until that run ends: it then gives no more than its size minus every
  -- slot held (counted only then, which is rare). A deleted pool gives none.
  for v_group in
    select p.name, p.slots, c.n from (
      select u.pool, count(*)::int as n from unnest(v_item_pools) as u (pool) where u.pool is not null group by u.pool
    ) c join dwop.pools p on p.name = c.pool order by p.name
  loop
    select coalesce(array_agg(x.slot order by x.slot), '{}') into v_taken from (
      select s.slot from dwop.pool_slots s
      where s.pool = v_group.name and s.slot < v_group.slots and (s.run_id is null or dwop.run_ended(s.run_id))
      order by s.slot
      limit case when dwop.pool_shrunk_held(v_group.name, v_group.slots)
                 then greatest(0, least(v_group.n, v_group.slots - dwop.pool_held(v_group.name)))
                 else v_group.n end
      for update of s skip locked
    ) x;
    v_pools := v_pools || v_group.name;
    v_next := v_next || (cardinality(v_slots) + 1);
    v_slots := v_slots || v_taken;
    v_end := v_end || (cardinality(v_slots) + 1);
  end loop;

  for v_item in
    select i from generate_subscripts(p_task_ids, 1) as g (i) order by p_task_ids[i], p_attempts[i], i
  loop
    v_o := array_position(v_owners, v_item_owners[v_item]);
    v_p := cardinality(v_owners) + array_position(v_pools, v_item_pools[v_item]);
    v_owner_slot := case when v_next[v_o] < v_end[v_o] then v_slots[v_next[v_o]] end;
    v_pool_slot := case when v_next[v_p] < v_end[v_p] then v_slots[v_next[v_p]] end;
    v_wait := case when v_o is not null and v_owner_slot is null then 'owner'
                   when v_item_pools[v_item] is not null and v_pool_slot is null then 'pool' end;
    for v_run in
      select * from dwop.start_run(p_task_ids[v_item], p_attempts[v_item], p_dispatcher_id, p_executor, v_now,
                                   v_wait, v_pool_slot, v_owner_slot)
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
      if v_run.created then
        if v_owner_slot is not null then
          v_next[v_o] := v_next[v_o] + 1;
        end if;
        if v_pool_slot is not null then
          v_next[v_p] := v_next[v_p] + 1;
        end if;
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

