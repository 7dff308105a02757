-- start_runs (20261205000300) did the work of pools and owner caps for every batch: a query over the
-- batch's owners and pools (with a look at each owner's API keys), and two updates of parked tasks, each
-- finding nothing when no item has a pool and no owner a cap, as on a chain's every start (about 0.3 ms of
-- each completion that starts its successor). Now that work is done only when there is a limit to apply,
-- or a task to park. Admission is otherwise unchanged.
create or replace function dwop.start_runs(p_task_ids bigint[], p_attempts int[], p_dispatcher_id text, p_executor text,
                                p_now timestamptz default null, p_owner_max_running int default null)
returns table (item int, run_id bigint, created boolean, workflow_id uuid, task_name text, params jsonb,
               options jsonb, timeout_seconds int, has_requirements boolean)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_limit record;
  -- The items that would start a run, in task order, with their owner and pool.
  v_items int[];
  v_item_owners text[];
  v_item_pools text[];
  -- The limits the items are under ('owner:NAME' for an owner with a cap, 'pool:NAME'), each with the
  -- slots the batch took for it: all of them in one array (v_slots), limit i's from v_next[i] (the next
  -- one to give) to v_end[i] (exclusive).
  v_limits text[] := '{}';
  v_slots int[] := '{}';
  v_next int[] := '{}';
  v_end int[] := '{}';
  v_k int;
  v_o int;
  v_p int;
  v_owner_slot int;
  v_pool_slot int;
  -- What admission decided: the items to start with their slots (null: no pool, or no cap), and the
  -- tasks to park with why.
  v_start int[] := '{}';
  v_start_pool_slots int[] := '{}';
  v_start_owner_slots int[] := '{}';
  v_park bigint[] := '{}';
  v_park_why text[] := '{}';
begin
  if coalesce(cardinality(p_task_ids), 0) <> coalesce(cardinality(p_attempts), 0) then
    raise exception 'start_runs: % task ids but % attempts', cardinality(p_task_ids), cardinality(p_attempts)
      using errcode = '22023';
  end if;
  -- The tasks are locked in id order and read by primary key, their state tested outside the scan (see
  -- complete_runs); the lock returns each row as it is once locked.
  with locked as materialized (
    select t.id, t.status, t.attempt, t.owner, t.pool from dwop.tasks t where t.id = any(p_task_ids)
    order by t.id for no key update
  )
  select coalesce(array_agg(f.i order by f.task_id), '{}'), array_agg(f.owner order by f.task_id),
         array_agg(f.pool order by f.task_id)
  into v_items, v_item_owners, v_item_pools
  from (
    select distinct on (g.task_id) g.i::int as i, g.task_id, t.owner, t.pool
    from unnest(p_task_ids, p_attempts) with ordinality as g (task_id, attempt, i)
    join locked t on t.id = g.task_id
    where t.status = 'queued' and t.attempt = g.attempt
      and not exists (select 1 from dwop.runs r where r.task_id = g.task_id and r.attempt = g.attempt)
    order by g.task_id, g.i
  ) f;

  -- Each owner with a cap and each pool (a deleted pool gives none) takes free slots for its tasks: none
  -- when no item has a pool and no owner of theirs has a cap (most batches, each of a chain's starts).
  if p_owner_max_running is not null
     or exists (select 1 from unnest(v_item_pools) as u (pool) where u.pool is not null)
     or exists (select 1 from dwop.api_keys k
                where k.owner = any(v_item_owners) and k.revoked_at is null and k.max_running is not null) then
    for v_limit in
      select 'owner' as kind, c.owner as name, c.cap as size, c.n from (
        select u.owner, u.n, dwop.owner_max_running(u.owner, p_owner_max_running) as cap
        from (select x.owner, count(*)::int as n from unnest(v_item_owners) as x (owner) group by x.owner) u
      ) c where c.cap is not null
      union all
      select 'pool', p.name, p.slots, c.n from (
        select u.pool, count(*)::int as n from unnest(v_item_pools) as u (pool) where u.pool is not null group by u.pool
      ) c join dwop.pools p on p.name = c.pool
      order by 1, 2
    loop
      v_limits := v_limits || (v_limit.kind || ':' || v_limit.name);
      v_next := v_next || (cardinality(v_slots) + 1);
      v_slots := v_slots || dwop.take_slots(v_limit.kind, v_limit.name, v_limit.size, v_limit.n);
      v_end := v_end || (cardinality(v_slots) + 1);
    end loop;
  end if;

  -- Each item in turn takes the next slot of its owner and of its pool, or waits (and takes neither).
  for v_k in 1 .. cardinality(v_items) loop
    v_o := array_position(v_limits, 'owner:' || v_item_owners[v_k]);
    v_p := array_position(v_limits, 'pool:' || v_item_pools[v_k]);
    v_owner_slot := case when v_next[v_o] < v_end[v_o] then v_slots[v_next[v_o]] end;
    v_pool_slot := case when v_next[v_p] < v_end[v_p] then v_slots[v_next[v_p]] end;
    if v_o is not null and v_owner_slot is null then
      v_park := v_park || p_task_ids[v_items[v_k]];
      v_park_why := v_park_why || 'owner'::text;
    elsif v_item_pools[v_k] is not null and v_pool_slot is null then
      v_park := v_park || p_task_ids[v_items[v_k]];
      v_park_why := v_park_why || 'pool'::text;
    else
      v_start := v_start || v_items[v_k];
      v_start_pool_slots := v_start_pool_slots || v_pool_slot;
      v_start_owner_slots := v_start_owner_slots || v_owner_slot;
      if v_o is not null then
        v_next[v_o] := v_next[v_o] + 1;
      end if;
      if v_pool_slot is not null then
        v_next[v_p] := v_next[v_p] + 1;
      end if;
    end if;
  end loop;

  if cardinality(v_park) > 0 then
    update dwop.tasks t set parked = w.why from unnest(v_park, v_park_why) as w (id, why) where t.id = w.id;
  end if;

  return query
  with admitted as (
    select a.item::int as item, a.pool_slot, a.owner_slot, t.id as task_id, t.workflow_id, t.attempt, t.owner,
           t.pool, t.name, t.params, t.options, t.timeout_seconds
    from unnest(v_start, v_start_pool_slots, v_start_owner_slots) as a (item, pool_slot, owner_slot)
    join dwop.tasks t on t.id = p_task_ids[a.item]
  ),
  -- (take_slots read the slots held again after locking its own, so the unique slot indexes find
  -- nothing here; were one to, that run would be left out and its task parked below, not the batch failed.)
  made as (
    insert into dwop.runs (task_id, workflow_id, attempt, status, executor, dispatcher_id, owner, pool, pool_slot,
                           owner_slot, created_at)
    select a.task_id, a.workflow_id, a.attempt, 'starting', p_executor, p_dispatcher_id, a.owner,
           case when a.pool_slot is not null then a.pool end, a.pool_slot, a.owner_slot, v_now
    from admitted a order by a.task_id
    on conflict do nothing
    returning id, task_id
  ),
  dispatched as (
    update dwop.tasks t set status = 'dispatched', dispatched_at = v_now, parked = null
    from made m where t.id = m.task_id
  ),
  running as (
    update dwop.workflows w set status = 'running', started_at = v_now, updated_at = v_now
    where w.id in (select a.workflow_id from admitted a) and w.status = 'queued'
  ),
  logged as (
    insert into dwop.events (workflow_id, kind, task_name, status, attempt, data, at)
    select a.workflow_id, 'task', a.name, 'dispatched', a.attempt,
           jsonb_build_object('run_id', m.id, 'executor', p_executor), v_now
    from made m join admitted a on a.task_id = m.task_id order by a.task_id
  )
  select a.item, m.id, true, a.workflow_id, a.name, a.params, a.options, a.timeout_seconds, w.has_requirements
  from made m join admitted a on a.task_id = m.task_id join dwop.workflows w on w.id = a.workflow_id;

  -- Only a slot's unique index can have left an admitted item without its run (see made).
  if cardinality(v_slots) > 0 then
    update dwop.tasks t set parked = case when a.pool_slot is not null then 'pool' else 'owner' end
    from unnest(v_start, v_start_pool_slots) as a (item, pool_slot)
    where t.id = p_task_ids[a.item]
      and not exists (select 1 from dwop.runs r where r.task_id = t.id and r.attempt = p_attempts[a.item]);
  end if;

  -- Every other item whose (task, attempt) has a run: a duplicate (of a delivery before, or of an item of
  -- this batch, whose run this statement sees).
  return query
  select g.i::int, r.id, false, r.workflow_id, t.name, t.params, t.options, t.timeout_seconds, false
  from unnest(p_task_ids, p_attempts) with ordinality as g (task_id, attempt, i)
  join dwop.runs r on r.task_id = g.task_id and r.attempt = g.attempt
  join dwop.tasks t on t.id = g.task_id
  where not (g.i::int = any(v_start));
end;
$$;

alter function dwop.start_runs(bigint[], int[], text, text, timestamptz, int) set plan_cache_mode = force_generic_plan;
