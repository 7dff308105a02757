-- A task's output lives at its succeeded attempt's own object, <workflow>/<task>/attempt-N.output.txt,
-- the one its worker (or its dispatcher) wrote, and is never moved: an attempt writes only its own object,
-- so one that ends after it was replaced (its worker cut off, its dispatcher paused) writes where nobody
-- reads, with no lock or clock to keep it out. Before, such an output was moved to <task>/output.txt
-- before the success was recorded: a storage request and a transaction holding the run's row on every
-- success whose worker uploaded its output, as every Kubernetes pod and every run on Supabase Storage does.
--
-- tasks.output_attempt: the attempt whose output a succeeded task's readers read, set with its success;
-- null on a task that succeeded before this migration (its output is at output.txt) and on any task that
-- has not succeeded. start_runs and start_cluster_run give each input its upstream's
-- (dwop.with_output_attempts), so that a dispatcher signs the right object's URL with no query of its
-- own. complete_runs, start_runs and start_cluster_run are redefined whole, with the settings
-- 20261205000500 and 20261205000700 gave the first two.

alter table dwop.tasks add column output_attempt int;

-- A task's params (`[{"name", "upstream"}]`) with `outputAttempt` on each whose upstream is one of the
-- workflow's tasks (not a submit-time input): its output_attempt, null for an output at output.txt. Each
-- upstream is looked up by its key, one at a time (a subquery per param): joined instead, the planner
-- (which guesses 100 elements for the array) read every task of the workflow for each start; in
-- bench/throughput.ts start_runs took 19.6 ms a call instead of 6.0 (pg_stat_statements), and a fresh
-- database's 2,000-task fan-out ran at 430-680 tasks a second instead of 870-1,300.
create function dwop.with_output_attempts(p_workflow_id uuid, p_params jsonb)
returns jsonb language sql stable
set plan_cache_mode = force_generic_plan set enable_seqscan = off
as $$
  select coalesce(jsonb_agg(p.param || coalesce((select jsonb_build_object('outputAttempt', u.output_attempt)
                                                 from dwop.tasks u
                                                 where u.workflow_id = p_workflow_id
                                                   and u.name = p.param ->> 'upstream'), '{}'::jsonb)
                            order by p.i), '[]'::jsonb)
  from jsonb_array_elements(p_params) with ordinality as p (param, i)
$$;

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
        error = null, output_attempt = t.attempt
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

create or replace function dwop.start_runs(p_task_ids bigint[], p_attempts int[], p_dispatcher_id text, p_executor text,
                                p_now timestamptz default null, p_owner_max_running int default null)
returns table (item int, run_id bigint, created boolean, workflow_id uuid, task_name text, params jsonb,
               options jsonb, timeout_seconds int, has_requirements boolean)
language plpgsql
set plan_cache_mode = force_generic_plan set enable_seqscan = off
as $$
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
  select a.item, m.id, true, a.workflow_id, a.name, dwop.with_output_attempts(a.workflow_id, a.params), a.options,
         a.timeout_seconds, w.has_requirements
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

-- start_cluster_run as 20261206000100 defines it, each input with its upstream's output attempt.
create or replace function dwop.start_cluster_run(p_task_id bigint, p_attempt int, p_dispatcher_id text, p_executor text,
                                       p_max_active int, p_now timestamptz default null,
                                       p_owner_max_running int default null)
returns table (run_id bigint, created boolean, run_status text, at_capacity boolean, workflow_id uuid,
               task_name text, params jsonb, options jsonb, timeout_seconds int, has_requirements boolean)
language plpgsql as $$
declare
  v_active int;
  v_created boolean;
begin
  if not exists (select 1 from dwop.runs r where r.task_id = p_task_id and r.attempt = p_attempt) then
    if not exists (select 1 from dwop.tasks t
                   where t.id = p_task_id and t.status = 'queued' and t.attempt = p_attempt) then
      return;
    end if;
    perform pg_advisory_xact_lock(hashtext('dwop.start_cluster_run'), hashtext(p_executor));
    select count(*) into v_active from dwop.runs r
    where r.executor = p_executor and r.finished_at is null;
    if v_active >= p_max_active then
      return query select null::bigint, false, null::text, true, null::uuid, null::text, null::jsonb,
                          null::jsonb, null::int, null::boolean;
      return;
    end if;
    select s.created into v_created
    from dwop.start_runs(array[p_task_id], array[p_attempt], p_dispatcher_id, p_executor, p_now,
                         p_owner_max_running) s;
    if v_created is null then
      return;
    end if;
  end if;

  return query
  select r.id, coalesce(v_created, false), r.status, false, r.workflow_id, t.name,
         dwop.with_output_attempts(r.workflow_id, t.params), t.options, t.timeout_seconds, w.has_requirements
  from dwop.runs r
  join dwop.tasks t on t.id = r.task_id
  join dwop.workflows w on w.id = r.workflow_id
  where r.task_id = p_task_id and r.attempt = p_attempt;
end;
$$;
