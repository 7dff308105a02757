-- A task's and a run's state changes in place where Postgres can make it so (a heap-only, "HOT", update:
-- the new row version on the same page, no new entry in any index), which it can only when no indexed
-- column changes, the columns of an index's predicate included. Every partial index over open tasks or
-- active runs named their states in its predicate, so each step of a task (queued, dispatched, running,
-- succeeded) and of a run (starting, running, succeeded) wrote a new entry into every index of its table:
-- 43 b-tree insertions a task in bench/throughput.ts's fan-out (pg_waldump), and almost no HOT update.
-- Those indexes now say "finished_at is null" instead, which a check constraint makes the same rows (a
-- task's finished_at is set exactly when it ends, a run's likewise, as every state change already did),
-- and leave some room in each page for the new versions (fillfactor). The steps in between, a task's
-- dispatch and start and a run's start, and a ready row's claim in the outbox, can then be HOT; a task's
-- queueing and end, and a run's end, still touch indexed columns (queued_at, finished_at).
-- The functions that read open tasks or active runs through those indexes say "finished_at is null" too
-- (a query must name the predicate for the planner to use a partial index); each is redefined whole below.
-- The indexes are rebuilt and the constraints checked under this migration's locks: on a large database,
-- run it while the dispatchers are stopped.

-- Rows written by an older DWOP, where the two could disagree.
update dwop.tasks set finished_at = null
where finished_at is not null and status in ('pending', 'queued', 'dispatched', 'running');
update dwop.tasks set finished_at = coalesce(started_at, dispatched_at, queued_at, created_at)
where finished_at is null and status not in ('pending', 'queued', 'dispatched', 'running');
update dwop.runs set finished_at = null
where finished_at is not null and status in ('starting', 'dispatched', 'running');
update dwop.runs set finished_at = coalesce(started_at, dispatched_at, created_at)
where finished_at is null and status not in ('starting', 'dispatched', 'running');

alter table dwop.tasks add constraint tasks_finished_at_iff_terminal
  check ((finished_at is null) = (status in ('pending', 'queued', 'dispatched', 'running')));
alter table dwop.runs add constraint runs_finished_at_iff_terminal
  check ((finished_at is null) = (status in ('starting', 'dispatched', 'running')));

-- Open tasks of a workflow (the end-of-workflow check), of a pool, and open tasks once queued, by queueing
-- time (a queued task whose message may have vanished: republish_stalled_tasks, system_stall). That one
-- holds dispatched and running tasks too, whose state its readers test: an index of queued tasks alone
-- would change at each dispatch. Its predicate names queued_at, so that a query for a workflow's open
-- tasks, which does not, cannot walk it instead of tasks_open (the planner, seeing queueing time follow
-- the table's order, took it for the cheaper).
drop index dwop.tasks_open;
create index tasks_open on dwop.tasks (workflow_id) where finished_at is null;
drop index dwop.tasks_open_by_pool;
create index tasks_open_by_pool on dwop.tasks (pool) where pool is not null and finished_at is null;
drop index dwop.tasks_queued;
create index tasks_open_by_queued_at on dwop.tasks (queued_at) where queued_at is not null and finished_at is null;

-- Active runs by dispatcher and by owner, and the slots they hold (unique while active).
drop index dwop.runs_active_by_dispatcher;
create index runs_active_by_dispatcher on dwop.runs (dispatcher_id) where finished_at is null;
drop index dwop.runs_active_by_owner;
create index runs_active_by_owner on dwop.runs (owner) where finished_at is null;
drop index dwop.runs_pool_slot;
create unique index runs_pool_slot on dwop.runs (pool, pool_slot) where pool_slot is not null and finished_at is null;
drop index dwop.runs_owner_slot;
create unique index runs_owner_slot on dwop.runs (owner, owner_slot)
  where owner_slot is not null and finished_at is null;

-- Room in each page for a row's next versions (new pages only; older ones as they are rewritten).
alter table dwop.tasks set (fillfactor = 70);
alter table dwop.runs set (fillfactor = 70);
alter table dwop.outbox set (fillfactor = 70);

-- finish_workflow_if_done as 20261126000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.finish_workflow_if_done(p_workflow_id uuid, p_now timestamptz)
returns text
language plpgsql set enable_seqscan = off as $$
declare
  v_status text;
  v_final text;
begin
  select status into v_status from dwop.workflows where id = p_workflow_id for no key update;
  if v_status is null or v_status in ('succeeded', 'failed', 'cancelled') then
    return null;
  end if;
  if exists (select 1 from dwop.tasks
             where workflow_id = p_workflow_id and finished_at is null) then
    return null;
  end if;

  select case
           when bool_or(status in ('failed', 'upstream_failed')) then 'failed'
           when bool_or(status = 'cancelled') then 'cancelled'
           else 'succeeded'
         end
  into v_final
  from dwop.tasks where workflow_id = p_workflow_id;

  update dwop.workflows
  set status = v_final, finished_at = p_now, updated_at = p_now, started_at = coalesce(started_at, p_now)
  where id = p_workflow_id;
  perform dwop.log_event(p_workflow_id, 'workflow', null, v_final, null, null, p_now);
  perform dwop.enqueue_workflow_callback(p_workflow_id, p_now);
  perform pg_notify('dwop_workflow_done', p_workflow_id::text);
  return v_final;
end;
$$;

-- cancel_workflow as 20261126000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.cancel_workflow(p_workflow_id uuid, p_now timestamptz default null)
returns int
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_count int;
begin
  perform 1 from dwop.workflows where id = p_workflow_id;
  if not found then
    return null;
  end if;

  update dwop.runs set status = 'cancelled', finished_at = v_now
  where workflow_id = p_workflow_id and finished_at is null;

  with cancelled as (
    update dwop.tasks set status = 'cancelled', finished_at = v_now, parked = null
    where workflow_id = p_workflow_id and finished_at is null
    returning name, attempt
  )
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, at)
  select p_workflow_id, 'task', name, 'cancelled', attempt, v_now from cancelled;
  get diagnostics v_count = row_count;

  update dwop.workflows set status = 'cancelled', finished_at = v_now, updated_at = v_now
  where id = p_workflow_id and status in ('queued', 'running');
  if found then
    perform dwop.log_event(p_workflow_id, 'workflow', null, 'cancelled', null, null, v_now);
    perform dwop.enqueue_workflow_callback(p_workflow_id, v_now);
    perform pg_notify('dwop_cancel', p_workflow_id::text);
    perform pg_notify('dwop_workflow_done', p_workflow_id::text);
    perform dwop.notify_if_parked();
  end if;
  return v_count;
end;
$$;

-- delete_pool as 20261205000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.delete_pool(p_name text)
returns text
language plpgsql as $$
begin
  perform 1 from dwop.pools p where p.name = p_name for update;
  if not found then
    return 'not_found';
  end if;
  if exists (select 1 from dwop.tasks t
             where t.pool = p_name and t.finished_at is null) then
    return 'in_use';
  end if;
  delete from dwop.pools p where p.name = p_name;
  return 'deleted';
end;
$$;

-- pool_list as 20261205000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.pool_list()
returns table (name text, slots int, running int, waiting int, created_at timestamptz, updated_at timestamptz)
language sql stable as $$
  select p.name, p.slots, dwop.pool_held(p.name),
         (select count(*)::int from dwop.tasks t
          where t.pool = p.name and t.status = 'queued' and t.finished_at is null),
         p.created_at, p.updated_at
  from dwop.pools p order by p.name;
$$;

-- republish_stalled_tasks as 20261203000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.republish_stalled_tasks(p_after_seconds int, p_waiting int, p_limit int default 100,
                                             p_now timestamptz default null)
returns int
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_after interval := make_interval(secs => p_after_seconds);
  v_ids bigint[];
  v_take int;
begin
  if p_after_seconds is null or p_after_seconds < 1 or p_waiting is null or p_limit is null or p_limit < 1 then
    return 0;
  end if;
  -- Two passes at once would each spend the same count of missing messages.
  if not pg_try_advisory_xact_lock(hashtext('dwop.republish_stalled_tasks')) then
    return 0;
  end if;
  -- A published message is never older than its task's queueing: no more tasks queued that long than
  -- messages waiting means none can be counted lost (the usual answer during a backlog, and a cheap one).
  if (select count(*) from dwop.tasks t where t.status = 'queued' and t.finished_at is null
                                            and t.queued_at <= v_now - v_after)
     <= greatest(p_waiting, 0) then
    return 0;
  end if;

  select array_agg(s.id order by s.last_published, s.id) into v_ids
  from (
    select t.id, p.last_published
    from dwop.tasks t
    cross join lateral (
      select max(o.published_at) as last_published, count(*)::int as published,
             count(*) filter (where o.published_at is null) as unpublished
      from dwop.outbox o
      where o.topic = 'task.ready'
        and (o.payload->>'taskId')::bigint = t.id and (o.payload->>'attempt')::int = t.attempt
    ) p
    where t.status = 'queued' and t.finished_at is null and t.queued_at <= v_now - v_after and t.parked is null
      and p.unpublished = 0
      and p.last_published <= v_now - v_after * (2 ^ least(p.published - 1, 5))
      and not exists (select 1 from dwop.runs r where r.task_id = t.id and r.attempt = t.attempt)
    -- A task being started right now (start_runs holds its row) is not stalled.
    for no key update of t skip locked
  ) s;

  v_take := least(p_limit, coalesce(cardinality(v_ids), 0) - greatest(p_waiting, 0));
  if v_take <= 0 then
    return 0;
  end if;

  with picked as (
    select t.id, t.workflow_id, t.name, t.attempt, k.ord
    from unnest(v_ids[1:v_take]) with ordinality k (id, ord)
    join dwop.tasks t on t.id = k.id
  ),
  queued as (
    insert into dwop.outbox (payload, available_at, created_at)
    select jsonb_build_object('taskId', id::text, 'attempt', attempt), v_now, v_now from picked order by ord
  )
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, data, at)
  select workflow_id, 'task', name, 'queued', attempt, jsonb_build_object('republished', true), v_now
  from picked;
  return v_take;
end;
$$;

-- system_stall as 20261204000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.system_stall(p_after_seconds int, p_alive_seconds int, p_now timestamptz default null,
                                  p_bus_backlog int default 0)
returns table (what text, since timestamptz, waiting int)
language plpgsql stable as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_after interval := make_interval(secs => greatest(coalesce(p_after_seconds, 10), 1));
  v_first_due timestamptz;
  v_due int;
  v_last_published timestamptz;
  v_last_beat timestamptz;
  v_first_published timestamptz;
  v_waiting int;
begin
  -- Reads only unpublished rows (the partial index outbox_unpublished).
  select min(o.available_at), count(*)::int into v_first_due, v_due
  from dwop.outbox o
  where o.published_at is null and o.topic = 'task.ready' and o.available_at <= v_now;
  if v_due > 0 and v_first_due <= v_now - v_after then
    -- The newest published row by id is the last one published: claims take rows in id order. The
    -- walk back from the newest row passes only over the unpublished ones.
    select o.published_at into v_last_published
    from dwop.outbox o
    where o.published_at is not null and o.topic = 'task.ready'
    order by o.id desc
    limit 1;
    -- A claimer holds rows back while the bus holds p_bus_backlog messages (DWOP_BUS_BACKLOG, fair
    -- share, 20261205000200): while that many published tasks still wait for a dispatcher, publishing
    -- is not what stalled.
    if (v_last_published is null or v_last_published <= v_now - v_after)
       and (coalesce(p_bus_backlog, 0) <= 0 or (
         select count(*) from (
           select 1 from dwop.tasks t
           where t.status = 'queued' and t.finished_at is null and t.queued_at is not null and t.parked is null
             and exists (select 1 from dwop.outbox o
                         where o.topic = 'task.ready' and o.published_at is not null
                           and (o.payload->>'taskId')::bigint = t.id and (o.payload->>'attempt')::int = t.attempt)
             and not exists (select 1 from dwop.runs r where r.task_id = t.id and r.attempt = t.attempt)
           limit p_bus_backlog) w) < p_bus_backlog) then
      return query select 'publishing'::text, greatest(v_first_due, v_last_published), v_due;
      return;
    end if;
  end if;

  select max(d.heartbeat_at) into v_last_beat from dwop.dispatchers d;
  if v_last_beat is not null and v_last_beat > v_now - make_interval(secs => greatest(coalesce(p_alive_seconds, 30), 1)) then
    return;
  end if;
  -- Reads only open tasks (the partial index tasks_open_by_queued_at) and their attempt's outbox rows
  -- (outbox_task_attempt).
  select min(p.published_at), count(*)::int into v_first_published, v_waiting
  from dwop.tasks t
  cross join lateral (
    select max(o.published_at) as published_at
    from dwop.outbox o
    where o.topic = 'task.ready'
      and (o.payload->>'taskId')::bigint = t.id and (o.payload->>'attempt')::int = t.attempt
  ) p
  where t.status = 'queued' and t.finished_at is null and t.queued_at is not null and t.parked is null
    and p.published_at <= v_now - v_after
    and not exists (select 1 from dwop.runs r where r.task_id = t.id and r.attempt = t.attempt);
  if v_waiting > 0 then
    return query select 'dispatching'::text, greatest(v_first_published, v_last_beat), v_waiting;
  end if;
end;
$$;

-- owner_running as 20261205000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.owner_running(p_owner text)
returns int
language sql stable as $$
  select count(*)::int from dwop.runs r
  where r.owner = p_owner and r.finished_at is null;
$$;

-- pool_held as 20261205000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.pool_held(p_pool text)
returns int
language sql stable as $$
  select count(*)::int from dwop.runs r
  where r.pool = p_pool and r.pool_slot is not null and r.finished_at is null;
$$;

-- take_slots as 20261205000200 defines it, with its open or active rows read by finished_at.
create or replace function dwop.take_slots(p_kind text, p_name text, p_size int, p_count int)
returns int[]
language plpgsql as $$
declare
  v_key int := hashtext('dwop.slot.' || p_kind || ':' || p_name);
  v_held int[];
  v_room int;
  v_got int[] := '{}';
  v_taken int[];
begin
  loop
    if p_kind = 'pool' then
      v_held := array(select r.pool_slot from dwop.runs r
                      where r.pool = p_name and r.pool_slot is not null
                        and r.finished_at is null);
      v_room := p_size - cardinality(v_held);
    else
      v_held := array(select r.owner_slot from dwop.runs r
                      where r.owner = p_name and r.owner_slot is not null
                        and r.finished_at is null);
      v_room := p_size - dwop.owner_running(p_name);
    end if;
    v_got := array(select g from unnest(v_got) g where g <> all(v_held));
    v_taken := array(select g from generate_series(0, p_size - 1) g
                     where case when g = any(v_held) or g = any(v_got) then false
                                else pg_try_advisory_xact_lock(v_key, g) end
                     limit greatest(0, least(p_count, v_room) - cardinality(v_got)));
    if cardinality(v_taken) = 0 then
      return v_got;
    end if;
    v_got := v_got || v_taken;
  end loop;
end;
$$;

-- metrics_snapshot as 20261126000600 defines it, with its open or active rows read by finished_at.
create or replace function dwop.metrics_snapshot(p_now timestamptz default null)
returns table (metric text, label text, value double precision)
language sql stable as $$
  select 'runs_active', r.executor || '/' || r.status, count(*)::double precision
  from dwop.runs r where r.finished_at is null
  group by r.executor, r.status
  union all
  select 'workflows_open', w.status, count(*)::double precision
  from dwop.workflows w where w.status in ('queued', 'running')
  group by w.status
  union all
  select 'outbox_due', null, count(*)::double precision
  from dwop.outbox o where o.published_at is null and o.available_at <= coalesce(p_now, now())
  union all
  select 'outbox_lag_seconds', null,
         coalesce(extract(epoch from coalesce(p_now, now()) - min(o.available_at)), 0)::double precision
  from dwop.outbox o where o.published_at is null and o.available_at <= coalesce(p_now, now());
$$;

-- quiet_active_runs as 20261126000600 defines it, with its open or active rows read by finished_at.
create or replace function dwop.quiet_active_runs(p_executor text, p_min_age_seconds int, p_now timestamptz default null)
returns table (run_id bigint, status text, job_name text)
language sql stable as $$
  select r.id, r.status, r.job_name
  from dwop.runs r
  where r.executor = p_executor and r.finished_at is null
    and coalesce(r.dispatched_at, r.created_at) <= coalesce(p_now, now()) - make_interval(secs => p_min_age_seconds)
  order by r.id;
$$;

-- start_cluster_run as 20261126000600 defines it, with its open or active rows read by finished_at.
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
  select r.id, coalesce(v_created, false), r.status, false, r.workflow_id, t.name, t.params, t.options,
         t.timeout_seconds, w.has_requirements
  from dwop.runs r
  join dwop.tasks t on t.id = r.task_id
  join dwop.workflows w on w.id = r.workflow_id
  where r.task_id = p_task_id and r.attempt = p_attempt;
end;
$$;

-- reap_lost_runs as 20261126000300 defines it, with its open or active rows read by finished_at.
create or replace function dwop.reap_lost_runs(p_stale_seconds int, p_own_id text default null, p_now timestamptz default null)
returns int
language sql as $$
  select dwop.retry_runs_as_lost(array(
    select r.id from dwop.runs r
    left join dwop.dispatchers d on d.id = r.dispatcher_id
    where r.finished_at is null and r.executor = 'local'
      and (r.dispatcher_id = p_own_id
           or d.id is null
           or d.heartbeat_at < coalesce(p_now, now()) - make_interval(secs => p_stale_seconds))
    order by r.id), 'the dispatcher running this attempt stopped', p_now);
$$;

-- reap_orphaned_runs as 20261126000700 defines it, with its open or active rows read by finished_at.
create or replace function dwop.reap_orphaned_runs(p_dispatcher_id text, p_held bigint[], p_grace_seconds int,
                                        p_now timestamptz default null)
returns int
language sql as $$
  select dwop.retry_runs_as_lost(array(
    select r.id from dwop.runs r
    where r.dispatcher_id = p_dispatcher_id and r.executor = 'local'
      and r.finished_at is null
      and r.id <> all(coalesce(p_held, '{}'))
      and r.created_at < coalesce(p_now, now()) - make_interval(secs => p_grace_seconds)
    order by r.id), 'the dispatcher lost track of this attempt', p_now);
$$;

-- purge_expired as 20261204000500 defines it, with its open or active rows read by finished_at.
create or replace function dwop.purge_expired(p_keep interval, p_batch int default 10000, p_now timestamptz default null)
returns jsonb
language plpgsql as $$
declare
  v_before timestamptz := coalesce(p_now, now()) - p_keep;
  v_outbox int;
  v_events int;
  v_chunks int;
  v_deliveries int;
  v_submissions int;
  v_secrets int;
  v_dispatchers int;
begin
  delete from dwop.outbox where id in (
    select id from dwop.outbox where published_at < v_before limit p_batch);
  get diagnostics v_outbox = row_count;

  delete from dwop.events where id in (
    select e.id from dwop.events e join dwop.workflows w on w.id = e.workflow_id
    where w.finished_at < v_before limit p_batch);
  get diagnostics v_events = row_count;

  delete from dwop.run_log_chunks where (run_id, byte_offset) in (
    select c.run_id, c.byte_offset from dwop.run_log_chunks c join dwop.workflows w on w.id = c.workflow_id
    where w.finished_at < v_before limit p_batch);
  get diagnostics v_chunks = row_count;

  delete from dwop.hook_deliveries where (trigger_id, delivery_id) in (
    select trigger_id, delivery_id from dwop.hook_deliveries where received_at < v_before limit p_batch);
  get diagnostics v_deliveries = row_count;

  delete from dwop.submissions where workflow_id in (
    select s.workflow_id from dwop.submissions s join dwop.workflows w on w.id = s.workflow_id
    where w.finished_at < v_before limit p_batch);
  get diagnostics v_submissions = row_count;

  update dwop.submissions set callback_url = null, callback_secret = null
  where workflow_id in (
    select s.workflow_id from dwop.submissions s
    where s.callback_secret is not null
      and exists (select 1 from dwop.outbox o
                  where o.topic = 'workflow.callback' and o.published_at is not null
                    and o.payload ->> 'workflowId' = s.workflow_id::text)
    limit p_batch);
  get diagnostics v_secrets = row_count;

  delete from dwop.dispatchers d where d.id in (
    select id from dwop.dispatchers where heartbeat_at < v_before limit p_batch)
    and not exists (select 1 from dwop.runs r
                    where r.dispatcher_id = d.id and r.finished_at is null);
  get diagnostics v_dispatchers = row_count;

  return jsonb_build_object('outbox', v_outbox, 'events', v_events, 'logChunks', v_chunks,
    'hookDeliveries', v_deliveries, 'submissions', v_submissions, 'callbackSecrets', v_secrets,
    'dispatchers', v_dispatchers);
end;
$$;
