-- DWOP's schema as supabase/migrations/ leave it: `pg_dump --schema-only --no-owner -n dwop` of a
-- database freshly migrated by DWOP's runner (shared/db/migrate.ts), less pg_dump's \restrict lines
-- (a random token per run). Made by `npm run schema:dump` (supabase/schema-dump.ts); do not edit by
-- hand: change the schema with a migration, then regenerate this file. test/schema.dump.test.ts fails
-- when it differs from a fresh dump.

--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: dwop; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA dwop;


--
-- Name: acquire_lease(text, text, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.acquire_lease(p_name text, p_holder text, p_ttl_seconds integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_holder text;
begin
  insert into dwop.leases as l (name, holder, acquired_at, renewed_at, expires_at)
  values (p_name, p_holder, v_now, v_now, v_now + make_interval(secs => p_ttl_seconds))
  on conflict (name) do update
  set holder = excluded.holder,
      acquired_at = case when l.holder = excluded.holder then l.acquired_at else excluded.acquired_at end,
      renewed_at = excluded.renewed_at,
      expires_at = excluded.expires_at
  where l.holder = excluded.holder or l.expires_at <= v_now
  returning l.holder into v_holder;
  return coalesce(v_holder = p_holder, false);
end;
$$;


--
-- Name: advance_schedule(uuid, text, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.advance_schedule(p_schedule_id uuid, p_claimer text, p_from timestamp with time zone, p_next timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
begin
  update dwop.schedules set next_fire_at = p_next, claimed_by = null, lease_until = null
  where id = p_schedule_id and claimed_by = p_claimer and next_fire_at = p_from;
  return found;
end;
$$;


--
-- Name: api_key_owner(text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.api_key_owner(p_key_hash text) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  select owner from dwop.api_keys where key_hash = p_key_hash and revoked_at is null;
$$;


--
-- Name: append_run_log(bigint, bigint, bytea, bigint); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.append_run_log(p_run_id bigint, p_offset bigint, p_data bytea, p_max_bytes bigint) RETURNS TABLE(result text, size bigint)
    LANGUAGE plpgsql
    AS $$
declare
  v_run dwop.runs%rowtype;
  v_size bigint;
begin
  select * into v_run from dwop.runs where id = p_run_id for no key update;
  if not found then
    return query select 'no_run'::text, 0::bigint;
    return;
  end if;
  select coalesce(max(byte_offset + length(data)), 0) into v_size
  from dwop.run_log_chunks where run_id = p_run_id;
  if v_run.status not in ('starting', 'dispatched', 'running') then
    return query select 'ended'::text, v_size;
  elsif p_offset <> v_size then
    return query select 'behind'::text, v_size;
  elsif v_size + length(p_data) > p_max_bytes then
    return query select 'full'::text, v_size;
  else
    insert into dwop.run_log_chunks (run_id, workflow_id, byte_offset, data)
    values (p_run_id, v_run.workflow_id, p_offset, p_data);
    return query select 'appended'::text, v_size + length(p_data);
  end if;
end;
$$;


--
-- Name: cancel_workflow(uuid, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.cancel_workflow(p_workflow_id uuid, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: claim_due_schedules(text, integer, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.claim_due_schedules(p_claimer text, p_batch integer, p_lease_seconds integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(id uuid, owner text, name text, cron text, timezone text, source text, requirements text, inputs jsonb, overlap text, catchup text, next_fire_at timestamp with time zone, recorded_fire_at timestamp with time zone, recorded_workflow_id uuid, recorded_outcome text, recorded_missed_through timestamp with time zone)
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with due as (
    select s.id from dwop.schedules s
    where not s.paused and s.next_fire_at <= v_now and (s.lease_until is null or s.lease_until < v_now)
    order by s.next_fire_at
    limit p_batch
    for update skip locked
  ), claimed as (
    update dwop.schedules s
    set claimed_by = p_claimer, lease_until = v_now + make_interval(secs => p_lease_seconds)
    from due where s.id = due.id
    returning s.*
  )
  select c.id, c.owner, c.name, c.cron, c.timezone, c.source, c.requirements, c.inputs, c.overlap, c.catchup,
         c.next_fire_at, f.fire_at, f.workflow_id, f.outcome, f.missed_through
  from claimed c
  left join lateral (
    select f.fire_at, f.workflow_id, f.outcome, f.missed_through from dwop.schedule_fires f
    where f.schedule_id = c.id and f.fire_at >= c.next_fire_at
    order by f.fire_at desc limit 1
  ) f on true;
end;
$$;


--
-- Name: claim_outbox_events(text, integer, integer, timestamp with time zone, text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.claim_outbox_events(p_claimer_id text, p_batch_size integer, p_lease_seconds integer DEFAULT 30, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone, p_topic text DEFAULT 'task.ready'::text) RETURNS TABLE(id bigint, topic text, payload jsonb, attempt integer, callback_url text, callback_secret text)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with recursive owners (owner) as (
    (select o.owner from dwop.outbox o
     where o.topic = p_topic and o.published_at is null order by o.owner limit 1)
    union all
    select (select o.owner from dwop.outbox o
            where o.topic = p_topic and o.published_at is null and o.owner > w.owner
            order by o.owner limit 1)
    from owners w where w.owner is not null
  ),
  ranked as (
    select c.id, c.priority, row_number() over (partition by w.owner order by c.priority desc, c.id) as turn
    from owners w
    cross join lateral (
      select o.id, o.priority from dwop.outbox o
      where o.topic = p_topic and o.published_at is null and o.owner = w.owner
        and o.available_at <= v_now and (o.lease_until is null or o.lease_until < v_now)
      order by o.priority desc, o.id
      limit p_batch_size
    ) c
    where w.owner is not null
  ),
  due as (
    select k.id, k.turn, k.priority from ranked k order by k.turn, k.priority desc, k.id limit p_batch_size
  ),
  -- Locked by primary key, their state tested after the lock (see complete_runs: with the test in the
  -- scan, the planner joined the due rows to a walk of every unpublished row, 0.2 s a claim).
  locked as materialized (
    select o.id, o.published_at, o.lease_until from dwop.outbox o
    where o.id = any(array(select d.id from due d))
    for update of o skip locked
  ),
  claimed as (
    update dwop.outbox o
    set claimed_by = p_claimer_id, lease_until = v_now + make_interval(secs => p_lease_seconds),
        claim_count = o.claim_count + 1
    from locked l
    where o.id = l.id and l.published_at is null and (l.lease_until is null or l.lease_until < v_now)
    returning o.id, o.topic, o.payload, o.delivery_attempts
  )
  select c.id, c.topic, c.payload, c.delivery_attempts + 1, s.callback_url, s.callback_secret
  from claimed c
  join due d on d.id = c.id
  left join dwop.submissions s
    on c.topic = 'workflow.callback' and s.workflow_id = (c.payload->>'workflowId')::uuid
  where c.topic <> 'workflow.callback' or s.workflow_id is not null
  order by d.turn, d.priority desc, c.id;
end;
$$;


--
-- Name: complete_runs(bigint[], timestamp with time zone, text[]); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.complete_runs(p_run_ids bigint[], p_now timestamp with time zone DEFAULT NULL::timestamp with time zone, p_job_names text[] DEFAULT NULL::text[]) RETURNS SETOF bigint
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
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


--
-- Name: complete_runs_and_start(bigint[], text, text, integer, timestamp with time zone, text[]); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.complete_runs_and_start(p_run_ids bigint[], p_dispatcher_id text, p_executor text, p_owner_max_running integer DEFAULT NULL::integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone, p_job_names text[] DEFAULT NULL::text[]) RETURNS TABLE(completed_id bigint, run_id bigint, task_id bigint, attempt integer, workflow_id uuid, task_name text, params jsonb, options jsonb, timeout_seconds integer, has_requirements boolean)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
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


--
-- Name: create_api_key(text, text, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.create_api_key(p_owner text, p_name text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(id uuid, key text, prefix text, created_at timestamp with time zone)
    LANGUAGE plpgsql
    AS $$
declare
  v_key text := 'dwop_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  v_row dwop.api_keys;
begin
  insert into dwop.api_keys (owner, name, key_hash, prefix, created_at)
  values (p_owner, p_name, encode(sha256(convert_to(v_key, 'UTF8')), 'hex'), left(v_key, 12),
          coalesce(p_now, now()))
  returning * into v_row;
  return query select v_row.id, v_key, v_row.prefix, v_row.created_at;
end;
$$;


--
-- Name: create_schedule(text, text, text, text, text, text, jsonb, text, text, timestamp with time zone, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.create_schedule(p_owner text, p_name text, p_cron text, p_timezone text, p_source text, p_requirements text, p_inputs jsonb, p_overlap text, p_catchup text, p_next_fire_at timestamp with time zone, p_max_per_owner integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    AS $$
begin
  perform pg_advisory_xact_lock(hashtextextended('dwop.schedules ' || p_owner, 0));
  if exists (select 1 from dwop.schedules where owner = p_owner and name = p_name) then
    return 'exists';
  end if;
  if (select count(*) from dwop.schedules where owner = p_owner) >= p_max_per_owner then
    return 'limit';
  end if;
  insert into dwop.schedules (owner, name, cron, timezone, source, requirements, inputs, overlap, catchup,
                              next_fire_at, created_at, updated_at)
  values (p_owner, p_name, p_cron, p_timezone, p_source, p_requirements, coalesce(p_inputs, '{}'),
          p_overlap, p_catchup, p_next_fire_at, coalesce(p_now, now()), coalesce(p_now, now()));
  return 'created';
end;
$$;


--
-- Name: create_trigger(text, text, text, text, text, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.create_trigger(p_owner text, p_name text, p_source text, p_requirements text, p_secret text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS uuid
    LANGUAGE sql
    AS $$
  insert into dwop.triggers (owner, name, source, requirements, secret, created_at)
  values (p_owner, p_name, p_source, p_requirements, p_secret, coalesce(p_now, now()))
  on conflict (owner, name) do nothing
  returning id
$$;


--
-- Name: delete_pool(text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.delete_pool(p_name text) RETURNS text
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: delete_schedule(text, text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.delete_schedule(p_owner text, p_name text) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
begin
  delete from dwop.schedules where owner = p_owner and name = p_name;
  return found;
end;
$$;


--
-- Name: delete_trigger(text, text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.delete_trigger(p_owner text, p_name text) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
begin
  delete from dwop.triggers where name = p_name and owner = p_owner;
  return found;
end;
$$;


--
-- Name: enqueue_workflow_callback(uuid, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.enqueue_workflow_callback(p_workflow_id uuid, p_now timestamp with time zone) RETURNS void
    LANGUAGE sql
    AS $$
  insert into dwop.outbox (topic, payload, available_at, created_at)
  select 'workflow.callback',
         jsonb_build_object('workflowId', s.workflow_id, 'summary', dwop.workflow_summary_json(s.workflow_id)),
         p_now, p_now
  from dwop.submissions s
  where s.workflow_id = p_workflow_id and s.callback_url is not null;
$$;


--
-- Name: fail_downstream(bigint, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.fail_downstream(p_task_id bigint, p_now timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    AS $$
declare
  v_count int;
  v_name text;
  v_ids bigint[];
begin
  select name into v_name from dwop.tasks where id = p_task_id;
  with recursive downstream (id) as (
    select unnest(downstream_ids) from dwop.tasks where id = p_task_id
    union
    select x.id from downstream d join dwop.tasks t on t.id = d.id cross join lateral unnest(t.downstream_ids) x (id)
  )
  select array_agg(d.id) into v_ids from downstream d;
  if v_ids is null then
    return 0;
  end if;
  with found as materialized (
    select t.id, t.status from dwop.tasks t where t.id = any(v_ids) order by t.id for no key update
  ),
  marked as (
    update dwop.tasks t
    set status = 'upstream_failed', finished_at = p_now, error = 'blocked by failed upstream ' || v_name
    from found f
    where t.id = f.id and f.status = 'pending'
    returning t.workflow_id, t.name
  ),
  logged as (
    insert into dwop.events (workflow_id, kind, task_name, status, at)
    select workflow_id, 'task', name, 'upstream_failed', p_now from marked
    returning 1
  )
  select count(*) into v_count from logged;
  return v_count;
end;
$$;


--
-- Name: fail_schedule_fire(uuid, timestamp with time zone, text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.fail_schedule_fire(p_schedule_id uuid, p_fire_at timestamp with time zone, p_reason text) RETURNS void
    LANGUAGE sql
    AS $$
  update dwop.schedule_fires f set outcome = 'failed', reason = p_reason
  where f.schedule_id = p_schedule_id and f.fire_at = p_fire_at and f.outcome = 'started'
    and not exists (select 1 from dwop.workflows w where w.id = f.workflow_id);
$$;


--
-- Name: finish_workflow_if_done(uuid, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.finish_workflow_if_done(p_workflow_id uuid, p_now timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    AS $$
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


--
-- Name: finished_runs_since(timestamp with time zone, bigint, integer); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.finished_runs_since(p_after_at timestamp with time zone, p_after_id bigint, p_limit integer) RETURNS TABLE(run_id bigint, finished_at timestamp with time zone, executor text, status text, failure_reason text, retried boolean, queued_to_dispatched double precision, dispatched_to_started double precision, started_to_finished double precision)
    LANGUAGE sql STABLE
    AS $$
  select r.id, r.finished_at, r.executor, r.status, r.failure_reason, t.attempt > r.attempt,
         case when t.attempt = r.attempt then extract(epoch from r.dispatched_at - t.queued_at) end,
         extract(epoch from r.started_at - r.dispatched_at),
         extract(epoch from r.finished_at - r.started_at)
  from dwop.runs r
  join dwop.tasks t on t.id = r.task_id
  where r.finished_at is not null and (r.finished_at, r.id) > (p_after_at, p_after_id)
  order by r.finished_at, r.id
  limit p_limit;
$$;


--
-- Name: forget_dispatchers(text[]); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.forget_dispatchers(p_ids text[]) RETURNS integer
    LANGUAGE sql
    AS $$
  with gone as (
    delete from dwop.dispatchers d where d.id = any(p_ids) and d.executor = 'local' returning 1
  )
  select count(*)::int from gone;
$$;


--
-- Name: heartbeat_dispatcher(text, text, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.heartbeat_dispatcher(p_id text, p_executor text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS void
    LANGUAGE sql
    AS $$
  insert into dwop.dispatchers (id, executor, started_at, heartbeat_at)
  values (p_id, p_executor, coalesce(p_now, now()), coalesce(p_now, now()))
  on conflict (id) do update set heartbeat_at = excluded.heartbeat_at;
$$;


--
-- Name: increase_attempt(bigint, text, text, integer, text, boolean, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.increase_attempt(p_run_id bigint, p_error_msg text, p_reason text DEFAULT 'exit_code'::text, p_exit_code integer DEFAULT NULL::integer, p_log_tail text DEFAULT NULL::text, p_non_retryable boolean DEFAULT false, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_run dwop.runs;
  v_task dwop.tasks;
  -- 'oom_killed' too: the node ran out of memory for the limit the task was given, which retrying
  -- (elsewhere, later) may cure. 'timeout' and 'exit_code' spend the task's own retries.
  v_infra boolean := p_reason in ('lost', 'evicted', 'image_pull', 'unschedulable', 'oom_killed');
  v_spent int;
  v_retry boolean;
  v_delay_ms bigint;
begin
  update dwop.runs
  set status = case when p_reason = 'lost' then 'lost' else 'failed' end, finished_at = greatest(v_now, started_at),
      failure_reason = p_reason, error = p_error_msg, exit_code = p_exit_code, log_tail = p_log_tail
  where id = p_run_id and status in ('starting', 'dispatched', 'running')
  returning * into v_run;
  if not found then
    return 'ignored';
  end if;
  -- The run's pool slot and its owner's share are free again.
  perform dwop.notify_if_parked();

  select * into v_task from dwop.tasks
  where id = v_run.task_id and attempt = v_run.attempt and status in ('dispatched', 'running')
  for no key update;
  if not found then
    return 'ignored';
  end if;

  if v_infra then
    v_spent := v_task.infra_failures + 1;
    v_retry := v_spent <= v_task.max_infra_retries;
  else
    v_spent := v_task.failures + 1;
    v_retry := not p_non_retryable and v_spent <= v_task.max_retries;
  end if;

  update dwop.tasks
  set failures = failures + case when v_infra then 0 else 1 end,
      infra_failures = infra_failures + case when v_infra then 1 else 0 end,
      error = p_error_msg
  where id = v_task.id;

  if v_retry then
    v_delay_ms := least(v_task.retry_backoff_ms::bigint * (2 ^ (v_spent - 1))::bigint, 300000);
    update dwop.tasks
    set status = 'queued', attempt = attempt + 1, queued_at = v_now, dispatched_at = null, started_at = null
    where id = v_task.id;
    insert into dwop.outbox (payload, available_at, created_at, owner, priority)
    values (jsonb_build_object('taskId', v_task.id::text, 'attempt', v_task.attempt + 1),
            v_now + make_interval(secs => v_delay_ms / 1000.0), v_now, v_task.owner, v_task.priority);
    perform dwop.log_event(v_task.workflow_id, 'task', v_task.name, 'retrying', v_task.attempt,
                           jsonb_build_object('reason', p_reason, 'exit_code', p_exit_code,
                                              'error', p_error_msg, 'delay_ms', v_delay_ms), v_now);
    return 'retried';
  end if;

  update dwop.tasks set status = 'failed', finished_at = greatest(v_now, started_at) where id = v_task.id;
  perform dwop.log_event(v_task.workflow_id, 'task', v_task.name, 'failed', v_task.attempt,
                         jsonb_build_object('reason', p_reason, 'exit_code', p_exit_code, 'error', p_error_msg), v_now);
  perform dwop.fail_downstream(v_task.id, v_now);
  perform dwop.finish_workflow_if_done(v_task.workflow_id, v_now);
  return 'failed';
end;
$$;


--
-- Name: instance_key(text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.instance_key(p_name text) RETURNS bytea
    LANGUAGE sql STABLE
    AS $$
  select key from dwop.instance_keys where name = p_name;
$$;


--
-- Name: lease_holder(text, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.lease_holder(p_name text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  select holder from dwop.leases where name = p_name and expires_at > coalesce(p_now, now());
$$;


--
-- Name: log_event(uuid, text, text, text, integer, jsonb, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.log_event(p_workflow_id uuid, p_kind text, p_task_name text, p_status text, p_attempt integer, p_data jsonb, p_now timestamp with time zone) RETURNS void
    LANGUAGE sql
    AS $$
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, data, at)
  values (p_workflow_id, p_kind, p_task_name, p_status, p_attempt, p_data, p_now);
$$;


--
-- Name: mark_outbox_published(text, bigint[], timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.mark_outbox_published(p_claimer_id text, p_ids bigint[], p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE sql
    SET enable_seqscan TO 'off'
    AS $$
  with marked as (
    update dwop.outbox set published_at = coalesce(p_now, now()), lease_until = null
    where id = any(p_ids) and published_at is null and claimed_by = p_claimer_id
    returning 1
  )
  select count(*)::int from marked;
$$;


--
-- Name: mark_run_running(bigint, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.mark_run_running(p_run_id bigint, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_task_id bigint;
begin
  update dwop.runs set status = 'running', started_at = coalesce(started_at, v_now)
  where id = p_run_id and status in ('starting', 'dispatched')
  returning task_id into v_task_id;
  if not found then
    return false;
  end if;
  update dwop.tasks set status = 'running', started_at = coalesce(started_at, v_now)
  where id = v_task_id and status = 'dispatched';
  return true;
end;
$$;


--
-- Name: mark_runs_dispatched(bigint[], text[], boolean, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.mark_runs_dispatched(p_run_ids bigint[], p_job_names text[], p_started boolean DEFAULT false, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS SETOF bigint
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
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


--
-- Name: mark_workflow_scheduled(uuid, text, boolean); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.mark_workflow_scheduled(p_id uuid, p_schedule text, p_cancel_previous boolean DEFAULT false) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  v_owner text;
  v_previous uuid;
  v_count int := 0;
begin
  update dwop.workflows set schedule = p_schedule where id = p_id returning owner into v_owner;
  if p_cancel_previous and v_owner is not null then
    for v_previous in
      select w.id from dwop.workflows w
      where w.owner = v_owner and w.schedule = p_schedule and w.id <> p_id and w.status in ('queued', 'running')
      order by w.created_at, w.id
    loop
      perform dwop.cancel_workflow(v_previous);
      v_count := v_count + 1;
    end loop;
  end if;
  return v_count;
end;
$$;


--
-- Name: metrics_snapshot(timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.metrics_snapshot(p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(metric text, label text, value double precision)
    LANGUAGE sql STABLE
    AS $$
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


--
-- Name: next_outbox_due(timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.next_outbox_due(p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    AS $$
  select min(greatest(available_at, coalesce(lease_until, available_at)))
  from dwop.outbox where published_at is null;
$$;


--
-- Name: notify_if_parked(); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.notify_if_parked() RETURNS void
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    AS $$
begin
  if exists (select 1 from dwop.tasks t where t.parked is not null) then
    perform pg_notify('dwop_outbox', '');
  end if;
end;
$$;


--
-- Name: notify_outbox(); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.notify_outbox() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
begin
  if current_setting('dwop.outbox_quiet', true) is distinct from 'on' then
    perform pg_notify('dwop_outbox', '');
  end if;
  return null;
end;
$$;


--
-- Name: owner_max_running(text, integer); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.owner_max_running(p_owner text, p_default integer) RETURNS integer
    LANGUAGE sql STABLE
    AS $$
  select coalesce((select max(k.max_running) from dwop.api_keys k
                   where k.owner = p_owner and k.revoked_at is null), p_default);
$$;


--
-- Name: owner_running(text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.owner_running(p_owner text) RETURNS integer
    LANGUAGE sql STABLE
    AS $$
  select count(*)::int from dwop.runs r
  where r.owner = p_owner and r.finished_at is null;
$$;


--
-- Name: parked_reason(text, text, text, integer); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.parked_reason(p_parked text, p_owner text, p_pool text, p_owner_max_running integer) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  select case p_parked
    when 'pool' then format('waiting for pool %s (%s/%s slots busy)', p_pool, dwop.pool_held(p_pool),
                            coalesce((select p.slots from dwop.pools p where p.name = p_pool), 0))
    when 'owner' then format('waiting for a running slot of owner %s (%s/%s running)', p_owner,
                             dwop.owner_running(p_owner),
                             coalesce(dwop.owner_max_running(p_owner, p_owner_max_running)::text, 'no cap'))
  end;
$$;


--
-- Name: pool_held(text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.pool_held(p_pool text) RETURNS integer
    LANGUAGE sql STABLE
    AS $$
  select count(*)::int from dwop.runs r
  where r.pool = p_pool and r.pool_slot is not null and r.finished_at is null;
$$;


--
-- Name: pool_list(); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.pool_list() RETURNS TABLE(name text, slots integer, running integer, waiting integer, created_at timestamp with time zone, updated_at timestamp with time zone)
    LANGUAGE sql STABLE
    AS $$
  select p.name, p.slots, dwop.pool_held(p.name),
         (select count(*)::int from dwop.tasks t
          where t.pool = p.name and t.status = 'queued' and t.finished_at is null),
         p.created_at, p.updated_at
  from dwop.pools p order by p.name;
$$;


--
-- Name: purge_expired(interval, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.purge_expired(p_keep interval, p_batch integer DEFAULT 10000, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: purge_schedule_fires(interval, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.purge_schedule_fires(p_keep interval, p_batch integer DEFAULT 10000, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  v_count int;
begin
  delete from dwop.schedule_fires where (schedule_id, fire_at) in (
    select f.schedule_id, f.fire_at from dwop.schedule_fires f join dwop.schedules s on s.id = f.schedule_id
    where f.fire_at < coalesce(p_now, now()) - p_keep
      and (s.next_fire_at is null or f.fire_at < s.next_fire_at)
    limit p_batch);
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;


--
-- Name: quiet_active_runs(text, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.quiet_active_runs(p_executor text, p_min_age_seconds integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(run_id bigint, status text, job_name text)
    LANGUAGE sql STABLE
    AS $$
  select r.id, r.status, r.job_name
  from dwop.runs r
  where r.executor = p_executor and r.finished_at is null
    and coalesce(r.dispatched_at, r.created_at) <= coalesce(p_now, now()) - make_interval(secs => p_min_age_seconds)
  order by r.id;
$$;


--
-- Name: reap_lost_runs(integer, text, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.reap_lost_runs(p_stale_seconds integer, p_own_id text DEFAULT NULL::text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE sql
    AS $$
  select dwop.retry_runs_as_lost(array(
    select r.id from dwop.runs r
    left join dwop.dispatchers d on d.id = r.dispatcher_id
    where r.finished_at is null and r.executor = 'local'
      and (r.dispatcher_id = p_own_id
           or d.id is null
           or d.heartbeat_at < coalesce(p_now, now()) - make_interval(secs => p_stale_seconds))
    order by r.id), 'the dispatcher running this attempt stopped', p_now);
$$;


--
-- Name: reap_orphaned_runs(text, bigint[], integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.reap_orphaned_runs(p_dispatcher_id text, p_held bigint[], p_grace_seconds integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE sql
    AS $$
  select dwop.retry_runs_as_lost(array(
    select r.id from dwop.runs r
    where r.dispatcher_id = p_dispatcher_id and r.executor = 'local'
      and r.finished_at is null
      and r.id <> all(coalesce(p_held, '{}'))
      and r.created_at < coalesce(p_now, now()) - make_interval(secs => p_grace_seconds)
    order by r.id), 'the dispatcher lost track of this attempt', p_now);
$$;


--
-- Name: record_callback_result(text, bigint, text, integer, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.record_callback_result(p_claimer_id text, p_id bigint, p_error text, p_max_attempts integer DEFAULT 10, p_backoff_ms integer DEFAULT 1000, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_row dwop.outbox;
  v_tries int;
  v_workflow uuid;
  v_delay_ms bigint;
begin
  select * into v_row from dwop.outbox
  where id = p_id and topic = 'workflow.callback' and claimed_by = p_claimer_id and published_at is null
  for update;
  if not found then
    return 'ignored';
  end if;
  v_tries := v_row.delivery_attempts + 1;
  v_workflow := (v_row.payload->>'workflowId')::uuid;

  if p_error is null then
    update dwop.outbox set published_at = v_now, lease_until = null, delivery_attempts = v_tries, last_error = null
    where id = p_id;
    perform dwop.log_event(v_workflow, 'callback', null, 'delivered', v_tries, null, v_now);
    return 'delivered';
  end if;

  if v_tries >= p_max_attempts then
    update dwop.outbox
    set published_at = v_now, gave_up_at = v_now, lease_until = null, delivery_attempts = v_tries,
        last_error = p_error
    where id = p_id;
    perform dwop.log_event(v_workflow, 'callback', null, 'failed', v_tries,
                           jsonb_build_object('error', p_error), v_now);
    return 'gave_up';
  end if;

  v_delay_ms := least(p_backoff_ms::bigint * (2 ^ (v_tries - 1))::bigint, 3600000);
  update dwop.outbox
  set available_at = v_now + make_interval(secs => v_delay_ms / 1000.0), claimed_by = null, lease_until = null,
      delivery_attempts = v_tries, last_error = p_error
  where id = p_id;
  perform dwop.log_event(v_workflow, 'callback', null, 'retrying', v_tries,
                         jsonb_build_object('error', p_error, 'delay_ms', v_delay_ms), v_now);
  return 'retrying';
end;
$$;


--
-- Name: record_hook_delivery(uuid, text, uuid, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.record_hook_delivery(p_trigger_id uuid, p_delivery_id text, p_workflow_id uuid, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(workflow_id uuid, workflow_exists boolean)
    LANGUAGE plpgsql
    AS $$
begin
  insert into dwop.hook_deliveries (trigger_id, delivery_id, workflow_id, received_at)
  values (p_trigger_id, p_delivery_id, p_workflow_id, coalesce(p_now, now()))
  on conflict (trigger_id, delivery_id) do nothing;

  return query
  select d.workflow_id, exists (select 1 from dwop.workflows w where w.id = d.workflow_id)
  from dwop.hook_deliveries d
  where d.trigger_id = p_trigger_id and d.delivery_id = p_delivery_id;
end;
$$;


--
-- Name: record_schedule_fire(uuid, text, timestamp with time zone, timestamp with time zone, text, uuid, text, timestamp with time zone, integer, text, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.record_schedule_fire(p_schedule_id uuid, p_claimer text, p_from timestamp with time zone, p_fire_at timestamp with time zone, p_outcome text, p_workflow_id uuid, p_reason text, p_missed_through timestamp with time zone, p_missed_count integer, p_missed_reason text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(fire_at timestamp with time zone, outcome text, workflow_id uuid, missed_through timestamp with time zone, workflow_exists boolean)
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  perform 1 from dwop.schedules s
  where s.id = p_schedule_id and s.claimed_by = p_claimer and s.next_fire_at = p_from
  for update;
  if not found then
    return;
  end if;
  if p_missed_through is not null then
    insert into dwop.schedule_fires (schedule_id, fire_at, outcome, reason, missed_through, missed_count,
                                     recorded_at)
    values (p_schedule_id, p_from, 'missed', p_missed_reason, p_missed_through, p_missed_count, v_now)
    on conflict do nothing;
  end if;
  if p_fire_at is not null then
    insert into dwop.schedule_fires (schedule_id, fire_at, outcome, workflow_id, reason, recorded_at)
    values (p_schedule_id, p_fire_at, p_outcome, p_workflow_id, p_reason, v_now)
    on conflict do nothing;
  end if;

  return query
  select f.fire_at, f.outcome, f.workflow_id, f.missed_through,
         f.workflow_id is not null and exists (select 1 from dwop.workflows w where w.id = f.workflow_id)
  from dwop.schedule_fires f
  where f.schedule_id = p_schedule_id and f.fire_at = coalesce(p_fire_at, p_from);
end;
$$;


--
-- Name: release_lease(text, text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.release_lease(p_name text, p_holder text) RETURNS boolean
    LANGUAGE sql
    AS $$
  with released as (delete from dwop.leases where name = p_name and holder = p_holder returning 1)
  select exists (select 1 from released);
$$;


--
-- Name: release_outbox_claims(text); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.release_outbox_claims(p_claimer_id text) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  v_released int;
begin
  update dwop.outbox set lease_until = null
  where claimed_by = p_claimer_id and published_at is null and lease_until is not null;
  get diagnostics v_released = row_count;
  if v_released > 0 then
    perform pg_notify('dwop_outbox', '');
  end if;
  return v_released;
end;
$$;


--
-- Name: reoffer_parked_tasks(integer, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.reoffer_parked_tasks(p_owner_max_running integer DEFAULT NULL::integer, p_limit integer DEFAULT 1000, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_count int;
begin
  if not exists (select 1 from dwop.tasks t where t.parked is not null) then
    return 0;
  end if;
  if not pg_try_advisory_xact_lock(hashtext('dwop.reoffer_parked_tasks')) then
    return 0;
  end if;
  with parked as (
    select t.id, t.owner, t.pool, t.priority,
           row_number() over (partition by t.owner order by t.priority desc, t.id) as owner_turn
    from dwop.tasks t where t.parked is not null
  ),
  fair as (
    select p.*, row_number() over (partition by p.pool order by p.owner_turn, p.priority desc, p.id) as pool_turn
    from parked p
  ),
  room as (
    select o.owner, dwop.owner_max_running(o.owner, p_owner_max_running) - dwop.owner_running(o.owner) as n
    from (select distinct owner from parked) o
  ),
  free as (
    select l.name as pool, l.slots - dwop.pool_held(l.name) as n
    from dwop.pools l where l.name in (select pool from parked)
  ),
  picked as (
    select f.id, f.owner_turn, f.priority from fair f
    join room r on r.owner = f.owner
    left join free x on x.pool = f.pool
    where (r.n is null or f.owner_turn <= r.n) and (f.pool is null or f.pool_turn <= coalesce(x.n, 0))
    order by f.owner_turn, f.priority desc, f.id
    limit p_limit
  ),
  reoffered as (
    update dwop.tasks t set parked = null
    from picked k
    where t.id = k.id and t.parked is not null and t.status = 'queued'
    returning t.id, t.attempt, t.owner, t.priority, k.owner_turn
  )
  insert into dwop.outbox (payload, available_at, created_at, owner, priority)
  select jsonb_build_object('taskId', id::text, 'attempt', attempt), v_now, v_now, owner, priority
  from reoffered order by owner_turn, priority desc, id;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;


--
-- Name: republish_stalled_tasks(integer, integer, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.republish_stalled_tasks(p_after_seconds integer, p_waiting integer, p_limit integer DEFAULT 100, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: reserve_submission(text, text, text, uuid, text, text, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.reserve_submission(p_owner text, p_idempotency_key text, p_request_hash text, p_workflow_id uuid, p_callback_url text, p_callback_secret text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(workflow_id uuid, request_hash text, workflow_exists boolean)
    LANGUAGE plpgsql
    AS $$
begin
  insert into dwop.submissions (workflow_id, owner, idempotency_key, request_hash, callback_url,
                                callback_secret, created_at)
  values (p_workflow_id, p_owner, p_idempotency_key, p_request_hash, p_callback_url, p_callback_secret,
          coalesce(p_now, now()))
  on conflict (owner, idempotency_key) do nothing;

  return query
  select s.workflow_id, s.request_hash, exists (select 1 from dwop.workflows w where w.id = s.workflow_id)
  from dwop.submissions s
  where (p_idempotency_key is null and s.workflow_id = p_workflow_id)
     or (s.owner = p_owner and s.idempotency_key = p_idempotency_key);
end;
$$;


--
-- Name: retry_runs_as_lost(bigint[], text, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.retry_runs_as_lost(p_run_ids bigint[], p_error text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_run bigint;
  v_count int := 0;
begin
  foreach v_run in array coalesce(p_run_ids, '{}') loop
    if dwop.increase_attempt(v_run, p_error, 'lost', null, null, false, v_now) <> 'ignored' then
      v_count := v_count + 1;
    end if;
  end loop;
  return v_count;
end;
$$;


--
-- Name: retry_workflow(uuid, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.retry_workflow(p_workflow_id uuid, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_status text;
  v_count int;
begin
  select status into v_status from dwop.workflows where id = p_workflow_id for no key update;
  if v_status is null or v_status not in ('failed', 'cancelled') then
    return null;
  end if;

  update dwop.tasks
  set status = 'pending', failures = 0, infra_failures = 0, error = null,
      dispatched_at = null, started_at = null, finished_at = null
  where workflow_id = p_workflow_id and status in ('failed', 'upstream_failed', 'cancelled');
  get diagnostics v_count = row_count;

  update dwop.tasks t
  set pending_inputs = (
    select count(*) from dwop.tasks u where u.id = any(t.upstream_ids) and u.status <> 'succeeded'
  )
  where t.workflow_id = p_workflow_id and t.status = 'pending';

  with ready as (
    update dwop.tasks
    set status = 'queued', attempt = attempt + 1, queued_at = v_now
    where workflow_id = p_workflow_id and status = 'pending' and pending_inputs = 0
    returning id, name, attempt, position, owner, priority
  ),
  queued as (
    insert into dwop.outbox (payload, available_at, created_at, owner, priority)
    select jsonb_build_object('taskId', id::text, 'attempt', attempt), v_now, v_now, owner, priority
    from ready order by position
  )
  insert into dwop.events (workflow_id, kind, task_name, status, attempt, at)
  select p_workflow_id, 'task', name, 'queued', attempt, v_now from ready;

  update dwop.workflows set status = 'running', finished_at = null, updated_at = v_now
  where id = p_workflow_id;
  perform dwop.log_event(p_workflow_id, 'workflow', null, 'running', null,
                         jsonb_build_object('retried_tasks', v_count), v_now);
  return v_count;
end;
$$;


--
-- Name: revoke_api_key(text, uuid, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.revoke_api_key(p_owner text, p_id uuid, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
begin
  update dwop.api_keys set revoked_at = coalesce(p_now, now())
  where id = p_id and owner = p_owner and revoked_at is null;
  return found;
end;
$$;


--
-- Name: run_statuses(bigint[]); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.run_statuses(p_run_ids bigint[]) RETURNS TABLE(run_id bigint, status text)
    LANGUAGE sql STABLE
    AS $$
  select r.id, r.status from dwop.runs r where r.id = any(p_run_ids);
$$;


--
-- Name: seal_run_log(bigint); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.seal_run_log(p_run_id bigint) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  v_count int;
begin
  delete from dwop.run_log_chunks where run_id = p_run_id;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;


--
-- Name: set_key_max_running(uuid, integer); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.set_key_max_running(p_id uuid, p_max_running integer) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
begin
  update dwop.api_keys k set max_running = p_max_running where k.id = p_id and k.revoked_at is null;
  if not found then
    return false;
  end if;
  perform dwop.notify_if_parked();
  return true;
end;
$$;


--
-- Name: set_pool(text, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.set_pool(p_name text, p_slots integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS TABLE(name text, slots integer, running integer, waiting integer, created_at timestamp with time zone, updated_at timestamp with time zone)
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  insert into dwop.pools as p (name, slots, created_at, updated_at)
  values (p_name, p_slots, v_now, v_now)
  on conflict on constraint pools_pkey do update set slots = excluded.slots, updated_at = excluded.updated_at;
  perform dwop.notify_if_parked();
  return query select l.* from dwop.pool_list() l where l.name = p_name;
end;
$$;


--
-- Name: start_cluster_run(bigint, integer, text, text, integer, timestamp with time zone, integer); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.start_cluster_run(p_task_id bigint, p_attempt integer, p_dispatcher_id text, p_executor text, p_max_active integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone, p_owner_max_running integer DEFAULT NULL::integer) RETURNS TABLE(run_id bigint, created boolean, run_status text, at_capacity boolean, workflow_id uuid, task_name text, params jsonb, options jsonb, timeout_seconds integer, has_requirements boolean)
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: start_runs(bigint[], integer[], text, text, timestamp with time zone, integer); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.start_runs(p_task_ids bigint[], p_attempts integer[], p_dispatcher_id text, p_executor text, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone, p_owner_max_running integer DEFAULT NULL::integer) RETURNS TABLE(item integer, run_id bigint, created boolean, workflow_id uuid, task_name text, params jsonb, options jsonb, timeout_seconds integer, has_requirements boolean)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_seqscan TO 'off'
    AS $$
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


--
-- Name: submit_workflow(uuid, text, text, text, boolean, text[], text[], jsonb, integer[], integer[], text[], text[], text[], bigint[], integer[], text[], integer[], integer[], integer[], integer, integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.submit_workflow(p_id uuid, p_owner text, p_name text, p_source text, p_has_requirements boolean, p_inputs text[], p_names text[], p_params jsonb, p_retries integer[], p_timeouts integer[], p_images text[], p_cpus text[], p_memories text[], p_code_offsets bigint[], p_code_lengths integer[], p_pools text[], p_priorities integer[], p_edge_down integer[], p_edge_up integer[], p_backoff_ms integer, p_max_infra_retries integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql
    SET work_mem TO '64MB'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_count int := coalesce(cardinality(p_names), 0);
  v_ids bigint[];
  v_roots int;
  v_sequence regclass := pg_get_serial_sequence('dwop.tasks', 'id')::regclass;
  v_unknown text;
begin
  if v_count = 0
     or jsonb_typeof(p_params) is distinct from 'array' or jsonb_array_length(p_params) <> v_count
     or coalesce(cardinality(p_retries), 0) <> v_count or coalesce(cardinality(p_timeouts), 0) <> v_count
     or coalesce(cardinality(p_images), 0) <> v_count or coalesce(cardinality(p_cpus), 0) <> v_count
     or coalesce(cardinality(p_memories), 0) <> v_count
     or coalesce(cardinality(p_code_offsets), 0) <> v_count or coalesce(cardinality(p_code_lengths), 0) <> v_count
     or coalesce(cardinality(p_pools), 0) <> v_count or coalesce(cardinality(p_priorities), 0) <> v_count
     or coalesce(cardinality(p_edge_down), 0) <> coalesce(cardinality(p_edge_up), 0) then
    raise exception 'workflow %: the task columns must all hold one value per task (% names)', p_id, v_count
      using errcode = '22023';
  end if;
  if exists (select 1 from unnest(p_edge_down, p_edge_up) e (down, up)
             where down is null or up is null or down not between 1 and v_count or up not between 1 and v_count
                or down = up) then
    raise exception 'workflow % has an edge that is not between two of its tasks', p_id using errcode = '22023';
  end if;

  -- Pools (20261205000200): a task names an existing pool; the pool rows are held until commit, so a
  -- pool is not deleted under a workflow that uses it.
  select p.name into v_unknown
  from unnest(p_pools) p (name)
  where p.name is not null and not exists (select 1 from dwop.pools o where o.name = p.name)
  limit 1;
  if v_unknown is not null then
    raise exception 'the workflow names pool %, which does not exist (an operator makes it with PUT /pools/%)',
      v_unknown, v_unknown using errcode = 'DW001';
  end if;
  perform 1 from dwop.pools o where o.name = any(p_pools) for key share;

  insert into dwop.workflows (id, owner, name, source, has_requirements, inputs, task_count, created_at, updated_at)
  values (p_id, p_owner, p_name, p_source, p_has_requirements, coalesce(p_inputs, '{}'), v_count, v_now, v_now)
  on conflict (id) do nothing;
  if not found then
    return false;
  end if;

  select array_agg(nextval(v_sequence) order by g) into v_ids from generate_series(1, v_count) g;

  with links as (
    select distinct v_ids[e.down] as down, v_ids[e.up] as up from unnest(p_edge_down, p_edge_up) e (down, up)
  ),
  ups as (select down as id, array_agg(up order by up) as ids from links group by down),
  downs as (select up as id, array_agg(down order by down) as ids from links group by up),
  inserted as (
    insert into dwop.tasks (id, workflow_id, name, position, status, attempt, max_retries, retry_backoff_ms,
                            max_infra_retries, timeout_seconds, options, params, upstream_ids, downstream_ids,
                            pending_inputs, created_at, queued_at, owner, pool, priority)
    overriding system value
    select v_ids[t.ord], p_id, t.name, t.ord, case when u.ids is null then 'queued' else 'pending' end,
           case when u.ids is null then 1 else 0 end,
           coalesce(t.retries, 0), coalesce(p_backoff_ms, 1000), coalesce(p_max_infra_retries, 3), t.timeout,
           jsonb_build_object('image', t.image, 'cpu', t.cpu, 'memory', t.memory,
                              'code', jsonb_build_object('offset', t.code_offset, 'length', t.code_length)),
           coalesce(p_params -> (t.ord::int - 1), '[]'),
           coalesce(u.ids, '{}'), coalesce(d.ids, '{}'), coalesce(cardinality(u.ids), 0),
           v_now, case when u.ids is null then v_now end, p_owner, t.pool, coalesce(t.priority, 0)
    from unnest(p_names, p_retries, p_timeouts, p_images, p_cpus, p_memories, p_code_offsets, p_code_lengths,
                p_pools, p_priorities)
           with ordinality t (name, retries, timeout, image, cpu, memory, code_offset, code_length, pool, priority,
                              ord)
    left join ups u on u.id = v_ids[t.ord]
    left join downs d on d.id = v_ids[t.ord]
    returning id, position, status, priority
  ),
  roots as (
    insert into dwop.outbox (payload, available_at, created_at, owner, priority)
    select jsonb_build_object('taskId', id::text, 'attempt', 1), v_now, v_now, p_owner, priority
    from inserted where status = 'queued'
    order by position
    returning 1
  )
  select count(*) into v_roots from roots;

  if v_roots = 0 then
    raise exception 'workflow % has no root task', p_id using errcode = '22023';
  end if;

  perform dwop.log_event(p_id, 'workflow', null, 'queued', null, jsonb_build_object('tasks', v_count), v_now);
  return true;
end;
$$;


--
-- Name: system_stall(integer, integer, timestamp with time zone, integer); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.system_stall(p_after_seconds integer, p_alive_seconds integer, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone, p_bus_backlog integer DEFAULT 0) RETURNS TABLE(what text, since timestamp with time zone, waiting integer)
    LANGUAGE plpgsql STABLE
    AS $$
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


--
-- Name: take_slots(text, text, integer, integer); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.take_slots(p_kind text, p_name text, p_size integer, p_count integer) RETURNS integer[]
    LANGUAGE plpgsql
    AS $$
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


--
-- Name: update_schedule(text, text, text, text, text, text, jsonb, text, text, boolean, boolean, timestamp with time zone, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.update_schedule(p_owner text, p_name text, p_cron text, p_timezone text, p_source text, p_requirements text, p_inputs jsonb, p_overlap text, p_catchup text, p_paused boolean, p_reschedule boolean, p_next_fire_at timestamp with time zone, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
begin
  update dwop.schedules
  set cron = p_cron, timezone = p_timezone, source = p_source, requirements = p_requirements,
      inputs = coalesce(p_inputs, '{}'), overlap = p_overlap, catchup = p_catchup, paused = p_paused,
      next_fire_at = case when p_reschedule then p_next_fire_at else next_fire_at end,
      updated_at = coalesce(p_now, now())
  where owner = p_owner and name = p_name;
  return found;
end;
$$;


--
-- Name: wake_stalled_outbox(integer, timestamp with time zone); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.wake_stalled_outbox(p_stale_seconds integer DEFAULT 10, p_now timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    AS $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_stalled int;
begin
  select count(*) into v_stalled
  from dwop.outbox o
  where o.published_at is null
    and o.available_at <= v_now - make_interval(secs => p_stale_seconds)
    and (o.lease_until is null or o.lease_until < v_now);
  if v_stalled > 0 then
    perform pg_notify('dwop_outbox', 'backstop');
  end if;
  return v_stalled;
end;
$$;


--
-- Name: workflow_summary_json(uuid); Type: FUNCTION; Schema: dwop; Owner: -
--

CREATE FUNCTION dwop.workflow_summary_json(p_workflow_id uuid) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
  select jsonb_build_object(
    'id', w.id, 'name', w.name, 'status', w.status, 'createdAt', w.created_at, 'finishedAt', w.finished_at,
    'tasks', coalesce((
      select jsonb_agg(jsonb_build_object(
               'name', t.name, 'status', t.status, 'error', t.error,
               'attempts', (select count(*) from dwop.runs r where r.task_id = t.id)) order by t.position)
      from dwop.tasks t where t.workflow_id = w.id), '[]'::jsonb))
  from dwop.workflows w where w.id = p_workflow_id;
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: api_keys; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.api_keys (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    owner text NOT NULL,
    name text NOT NULL,
    key_hash text NOT NULL,
    prefix text NOT NULL,
    max_running integer,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    CONSTRAINT api_keys_key_hash_check CHECK ((key_hash ~ '^[0-9a-f]{64}$'::text)),
    CONSTRAINT api_keys_max_running_check CHECK (((max_running >= 0) AND (max_running <= 100000))),
    CONSTRAINT api_keys_name_check CHECK (((char_length(name) >= 1) AND (char_length(name) <= 100))),
    CONSTRAINT api_keys_owner_check CHECK ((owner <> ''::text))
);


--
-- Name: dispatchers; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.dispatchers (
    id text NOT NULL,
    executor text NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    heartbeat_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: events; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.events (
    id bigint NOT NULL,
    workflow_id uuid NOT NULL,
    task_name text,
    kind text NOT NULL,
    status text,
    attempt integer,
    data jsonb,
    at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: events_id_seq; Type: SEQUENCE; Schema: dwop; Owner: -
--

ALTER TABLE dwop.events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dwop.events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: hook_deliveries; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.hook_deliveries (
    delivery_id text NOT NULL,
    workflow_id uuid NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    trigger_id uuid NOT NULL,
    CONSTRAINT hook_deliveries_delivery_id_check CHECK (((char_length(delivery_id) >= 1) AND (char_length(delivery_id) <= 200)))
);


--
-- Name: instance_keys; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.instance_keys (
    name text NOT NULL,
    key bytea NOT NULL,
    CONSTRAINT instance_keys_key_check CHECK ((length(key) >= 16))
);


--
-- Name: leases; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.leases (
    name text NOT NULL,
    holder text NOT NULL,
    acquired_at timestamp with time zone NOT NULL,
    renewed_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT leases_check CHECK ((expires_at > renewed_at))
);


--
-- Name: outbox; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.outbox (
    id bigint NOT NULL,
    topic text DEFAULT 'task.ready'::text NOT NULL,
    payload jsonb NOT NULL,
    owner text DEFAULT ''::text NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    available_at timestamp with time zone DEFAULT now() NOT NULL,
    claimed_by text,
    lease_until timestamp with time zone,
    claim_count integer DEFAULT 0 NOT NULL,
    published_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    delivery_attempts integer DEFAULT 0 NOT NULL,
    last_error text,
    gave_up_at timestamp with time zone,
    CONSTRAINT outbox_delivery_attempts_check CHECK ((delivery_attempts >= 0)),
    CONSTRAINT outbox_topic_check CHECK ((topic = ANY (ARRAY['task.ready'::text, 'workflow.callback'::text])))
)
WITH (fillfactor='50');


--
-- Name: outbox_id_seq; Type: SEQUENCE; Schema: dwop; Owner: -
--

ALTER TABLE dwop.outbox ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dwop.outbox_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: pools; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.pools (
    name text NOT NULL,
    slots integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT pools_name_check CHECK ((name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'::text)),
    CONSTRAINT pools_slots_check CHECK (((slots >= 0) AND (slots <= 10000)))
);


--
-- Name: run_log_chunks; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.run_log_chunks (
    run_id bigint NOT NULL,
    workflow_id uuid NOT NULL,
    byte_offset bigint NOT NULL,
    data bytea NOT NULL,
    CONSTRAINT run_log_chunks_byte_offset_check CHECK ((byte_offset >= 0)),
    CONSTRAINT run_log_chunks_data_check CHECK (((length(data) >= 1) AND (length(data) <= 1048576)))
);


--
-- Name: runs; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.runs (
    id bigint NOT NULL,
    task_id bigint NOT NULL,
    workflow_id uuid NOT NULL,
    attempt integer NOT NULL,
    status text NOT NULL,
    executor text,
    job_name text,
    dispatcher_id text,
    owner text DEFAULT 'local'::text NOT NULL,
    pool text,
    pool_slot integer,
    owner_slot integer,
    exit_code integer,
    failure_reason text,
    error text,
    log_tail text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    dispatched_at timestamp with time zone,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    CONSTRAINT runs_attempt_check CHECK ((attempt >= 1)),
    CONSTRAINT runs_failed_has_reason CHECK (((status <> ALL (ARRAY['failed'::text, 'lost'::text])) OR (failure_reason IS NOT NULL))),
    CONSTRAINT runs_failure_reason_check CHECK ((failure_reason = ANY (ARRAY['exit_code'::text, 'timeout'::text, 'oom_killed'::text, 'lost'::text, 'evicted'::text, 'image_pull'::text, 'unschedulable'::text, 'worker_error'::text, 'output_rejected'::text]))),
    CONSTRAINT runs_finished_at_iff_terminal CHECK (((finished_at IS NULL) = (status = ANY (ARRAY['starting'::text, 'dispatched'::text, 'running'::text])))),
    CONSTRAINT runs_owner_slot_check CHECK ((owner_slot >= 0)),
    CONSTRAINT runs_pool_slot_check CHECK ((pool_slot >= 0)),
    CONSTRAINT runs_status_check CHECK ((status = ANY (ARRAY['starting'::text, 'dispatched'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'lost'::text, 'cancelled'::text])))
)
WITH (fillfactor='70');


--
-- Name: runs_id_seq; Type: SEQUENCE; Schema: dwop; Owner: -
--

ALTER TABLE dwop.runs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dwop.runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: schedule_fires; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.schedule_fires (
    schedule_id uuid NOT NULL,
    fire_at timestamp(3) with time zone NOT NULL,
    outcome text NOT NULL,
    workflow_id uuid,
    reason text,
    missed_through timestamp(3) with time zone,
    missed_count integer,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT schedule_fires_check CHECK (((workflow_id IS NOT NULL) = (outcome = ANY (ARRAY['started'::text, 'failed'::text])))),
    CONSTRAINT schedule_fires_check1 CHECK (((missed_through IS NOT NULL) = (outcome = 'missed'::text))),
    CONSTRAINT schedule_fires_check2 CHECK ((missed_through >= fire_at)),
    CONSTRAINT schedule_fires_missed_count_check CHECK ((missed_count > 0)),
    CONSTRAINT schedule_fires_outcome_check CHECK ((outcome = ANY (ARRAY['started'::text, 'failed'::text, 'skipped_overlap'::text, 'missed'::text])))
);


--
-- Name: schedules; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.schedules (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    owner text NOT NULL,
    name text NOT NULL,
    cron text NOT NULL,
    timezone text DEFAULT 'UTC'::text NOT NULL,
    source text NOT NULL,
    requirements text,
    inputs jsonb DEFAULT '{}'::jsonb NOT NULL,
    overlap text DEFAULT 'skip'::text NOT NULL,
    catchup text DEFAULT 'none'::text NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    next_fire_at timestamp(3) with time zone,
    claimed_by text,
    lease_until timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT schedules_catchup_check CHECK ((catchup = ANY (ARRAY['none'::text, 'latest'::text]))),
    CONSTRAINT schedules_cron_check CHECK (((char_length(cron) >= 1) AND (char_length(cron) <= 200))),
    CONSTRAINT schedules_inputs_check CHECK ((jsonb_typeof(inputs) = 'object'::text)),
    CONSTRAINT schedules_name_check CHECK ((name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'::text)),
    CONSTRAINT schedules_overlap_check CHECK ((overlap = ANY (ARRAY['allow'::text, 'skip'::text, 'cancel_previous'::text]))),
    CONSTRAINT schedules_timezone_check CHECK (((char_length(timezone) >= 1) AND (char_length(timezone) <= 100)))
);


--
-- Name: submissions; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.submissions (
    workflow_id uuid NOT NULL,
    owner text NOT NULL,
    idempotency_key text,
    request_hash text NOT NULL,
    callback_url text,
    callback_secret text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT submissions_callback_url_check CHECK ((callback_url ~ '^https?://'::text)),
    CONSTRAINT submissions_check CHECK (((callback_url IS NULL) = (callback_secret IS NULL))),
    CONSTRAINT submissions_idempotency_key_check CHECK (((char_length(idempotency_key) >= 1) AND (char_length(idempotency_key) <= 255)))
);


--
-- Name: tasks; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.tasks (
    id bigint NOT NULL,
    workflow_id uuid NOT NULL,
    name text NOT NULL,
    "position" integer NOT NULL,
    status text NOT NULL,
    attempt integer DEFAULT 0 NOT NULL,
    failures integer DEFAULT 0 NOT NULL,
    infra_failures integer DEFAULT 0 NOT NULL,
    max_retries integer DEFAULT 0 NOT NULL,
    max_infra_retries integer DEFAULT 3 NOT NULL,
    retry_backoff_ms integer DEFAULT 1000 NOT NULL,
    timeout_seconds integer,
    options jsonb DEFAULT '{}'::jsonb NOT NULL,
    params jsonb DEFAULT '[]'::jsonb NOT NULL,
    owner text DEFAULT 'local'::text NOT NULL,
    pool text,
    priority integer DEFAULT 0 NOT NULL,
    parked text,
    upstream_ids bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    downstream_ids bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    pending_inputs integer NOT NULL,
    error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    queued_at timestamp with time zone,
    dispatched_at timestamp with time zone,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    CONSTRAINT tasks_attempt_check CHECK ((attempt >= 0)),
    CONSTRAINT tasks_check CHECK (((pending_inputs >= 0) AND (pending_inputs <= cardinality(upstream_ids)))),
    CONSTRAINT tasks_failures_check CHECK ((failures >= 0)),
    CONSTRAINT tasks_finished_at_iff_terminal CHECK (((finished_at IS NULL) = (status = ANY (ARRAY['pending'::text, 'queued'::text, 'dispatched'::text, 'running'::text])))),
    CONSTRAINT tasks_infra_failures_check CHECK ((infra_failures >= 0)),
    CONSTRAINT tasks_max_infra_retries_check CHECK ((max_infra_retries >= 0)),
    CONSTRAINT tasks_max_retries_check CHECK (((max_retries >= 0) AND (max_retries <= 100))),
    CONSTRAINT tasks_name_check CHECK ((name ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$'::text)),
    CONSTRAINT tasks_parked_check CHECK ((parked = ANY (ARRAY['pool'::text, 'owner'::text]))),
    CONSTRAINT tasks_parked_is_queued CHECK (((parked IS NULL) OR (status = 'queued'::text))),
    CONSTRAINT tasks_pending_waits CHECK (((status <> 'queued'::text) OR (pending_inputs = 0))),
    CONSTRAINT tasks_priority_check CHECK (((priority >= '-100'::integer) AND (priority <= 100))),
    CONSTRAINT tasks_queued_has_attempt CHECK (((status = 'pending'::text) OR (attempt >= 1) OR (status = ANY (ARRAY['cancelled'::text, 'upstream_failed'::text])))),
    CONSTRAINT tasks_retry_backoff_ms_check CHECK ((retry_backoff_ms >= 0)),
    CONSTRAINT tasks_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'queued'::text, 'dispatched'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'upstream_failed'::text, 'cancelled'::text]))),
    CONSTRAINT tasks_timeout_seconds_check CHECK ((timeout_seconds > 0))
)
WITH (fillfactor='70');


--
-- Name: tasks_id_seq; Type: SEQUENCE; Schema: dwop; Owner: -
--

ALTER TABLE dwop.tasks ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dwop.tasks_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: triggers; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.triggers (
    name text NOT NULL,
    owner text NOT NULL,
    source text NOT NULL,
    requirements text,
    secret text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    CONSTRAINT triggers_name_check CHECK ((name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'::text)),
    CONSTRAINT triggers_secret_check CHECK ((char_length(secret) >= 16))
);


--
-- Name: workflows; Type: TABLE; Schema: dwop; Owner: -
--

CREATE TABLE dwop.workflows (
    id uuid NOT NULL,
    owner text DEFAULT 'local'::text NOT NULL,
    name text NOT NULL,
    status text DEFAULT 'queued'::text NOT NULL,
    source text NOT NULL,
    has_requirements boolean DEFAULT false NOT NULL,
    inputs text[] DEFAULT '{}'::text[] NOT NULL,
    task_count integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    schedule text,
    CONSTRAINT workflows_finished_at_iff_terminal CHECK (((status = ANY (ARRAY['succeeded'::text, 'failed'::text, 'cancelled'::text])) = (finished_at IS NOT NULL))),
    CONSTRAINT workflows_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'cancelled'::text]))),
    CONSTRAINT workflows_task_count_check CHECK ((task_count > 0))
);


--
-- Name: api_keys api_keys_key_hash_key; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.api_keys
    ADD CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);


--
-- Name: dispatchers dispatchers_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.dispatchers
    ADD CONSTRAINT dispatchers_pkey PRIMARY KEY (id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);


--
-- Name: hook_deliveries hook_deliveries_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.hook_deliveries
    ADD CONSTRAINT hook_deliveries_pkey PRIMARY KEY (trigger_id, delivery_id);


--
-- Name: instance_keys instance_keys_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.instance_keys
    ADD CONSTRAINT instance_keys_pkey PRIMARY KEY (name);


--
-- Name: leases leases_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.leases
    ADD CONSTRAINT leases_pkey PRIMARY KEY (name);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (id);


--
-- Name: pools pools_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.pools
    ADD CONSTRAINT pools_pkey PRIMARY KEY (name);


--
-- Name: run_log_chunks run_log_chunks_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.run_log_chunks
    ADD CONSTRAINT run_log_chunks_pkey PRIMARY KEY (run_id, byte_offset);


--
-- Name: runs runs_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);


--
-- Name: runs runs_task_id_attempt_key; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.runs
    ADD CONSTRAINT runs_task_id_attempt_key UNIQUE (task_id, attempt);


--
-- Name: schedule_fires schedule_fires_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.schedule_fires
    ADD CONSTRAINT schedule_fires_pkey PRIMARY KEY (schedule_id, fire_at);


--
-- Name: schedule_fires schedule_fires_workflow_id_key; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.schedule_fires
    ADD CONSTRAINT schedule_fires_workflow_id_key UNIQUE (workflow_id);


--
-- Name: schedules schedules_owner_name_key; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.schedules
    ADD CONSTRAINT schedules_owner_name_key UNIQUE (owner, name);


--
-- Name: schedules schedules_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.schedules
    ADD CONSTRAINT schedules_pkey PRIMARY KEY (id);


--
-- Name: submissions submissions_owner_idempotency_key_key; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.submissions
    ADD CONSTRAINT submissions_owner_idempotency_key_key UNIQUE (owner, idempotency_key);


--
-- Name: submissions submissions_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.submissions
    ADD CONSTRAINT submissions_pkey PRIMARY KEY (workflow_id);


--
-- Name: tasks tasks_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.tasks
    ADD CONSTRAINT tasks_pkey PRIMARY KEY (id);


--
-- Name: tasks tasks_workflow_id_name_key; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.tasks
    ADD CONSTRAINT tasks_workflow_id_name_key UNIQUE (workflow_id, name);


--
-- Name: triggers triggers_owner_name_key; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.triggers
    ADD CONSTRAINT triggers_owner_name_key UNIQUE (owner, name);


--
-- Name: triggers triggers_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.triggers
    ADD CONSTRAINT triggers_pkey PRIMARY KEY (id);


--
-- Name: workflows workflows_pkey; Type: CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.workflows
    ADD CONSTRAINT workflows_pkey PRIMARY KEY (id);


--
-- Name: api_keys_owner; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX api_keys_owner ON dwop.api_keys USING btree (owner, created_at DESC);


--
-- Name: events_workflow; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX events_workflow ON dwop.events USING btree (workflow_id, id);


--
-- Name: outbox_task_attempt; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX outbox_task_attempt ON dwop.outbox USING btree ((((payload ->> 'taskId'::text))::bigint), (((payload ->> 'attempt'::text))::integer)) WHERE (topic = 'task.ready'::text);


--
-- Name: outbox_unpublished; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX outbox_unpublished ON dwop.outbox USING btree (topic, id) WHERE (published_at IS NULL);


--
-- Name: outbox_unpublished_fair; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX outbox_unpublished_fair ON dwop.outbox USING btree (topic, owner, priority DESC, id) WHERE (published_at IS NULL);


--
-- Name: run_log_chunks_workflow; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX run_log_chunks_workflow ON dwop.run_log_chunks USING btree (workflow_id);


--
-- Name: runs_active_by_dispatcher; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX runs_active_by_dispatcher ON dwop.runs USING btree (dispatcher_id) WHERE (finished_at IS NULL);


--
-- Name: runs_active_by_owner; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX runs_active_by_owner ON dwop.runs USING btree (owner) WHERE (finished_at IS NULL);


--
-- Name: runs_finished; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX runs_finished ON dwop.runs USING btree (finished_at, id) WHERE (finished_at IS NOT NULL);


--
-- Name: runs_owner_slot; Type: INDEX; Schema: dwop; Owner: -
--

CREATE UNIQUE INDEX runs_owner_slot ON dwop.runs USING btree (owner, owner_slot) WHERE ((owner_slot IS NOT NULL) AND (finished_at IS NULL));


--
-- Name: runs_pool_slot; Type: INDEX; Schema: dwop; Owner: -
--

CREATE UNIQUE INDEX runs_pool_slot ON dwop.runs USING btree (pool, pool_slot) WHERE ((pool_slot IS NOT NULL) AND (finished_at IS NULL));


--
-- Name: runs_workflow; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX runs_workflow ON dwop.runs USING btree (workflow_id);


--
-- Name: schedules_due; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX schedules_due ON dwop.schedules USING btree (next_fire_at) WHERE (NOT paused);


--
-- Name: tasks_open; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX tasks_open ON dwop.tasks USING btree (workflow_id) WHERE (finished_at IS NULL);


--
-- Name: tasks_open_by_pool; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX tasks_open_by_pool ON dwop.tasks USING btree (pool) WHERE ((pool IS NOT NULL) AND (finished_at IS NULL));


--
-- Name: tasks_open_by_queued_at; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX tasks_open_by_queued_at ON dwop.tasks USING btree (queued_at) WHERE ((queued_at IS NOT NULL) AND (finished_at IS NULL));


--
-- Name: tasks_parked; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX tasks_parked ON dwop.tasks USING btree (owner, priority DESC, id) WHERE (parked IS NOT NULL);


--
-- Name: workflows_owner_created; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX workflows_owner_created ON dwop.workflows USING btree (owner, created_at DESC, id DESC);


--
-- Name: workflows_owner_schedule; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX workflows_owner_schedule ON dwop.workflows USING btree (owner, schedule, created_at DESC, id DESC) WHERE (schedule IS NOT NULL);


--
-- Name: workflows_status_created; Type: INDEX; Schema: dwop; Owner: -
--

CREATE INDEX workflows_status_created ON dwop.workflows USING btree (status, created_at DESC, id DESC);


--
-- Name: outbox outbox_notify; Type: TRIGGER; Schema: dwop; Owner: -
--

CREATE TRIGGER outbox_notify AFTER INSERT ON dwop.outbox FOR EACH STATEMENT EXECUTE FUNCTION dwop.notify_outbox();


--
-- Name: events events_workflow_id_fkey; Type: FK CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.events
    ADD CONSTRAINT events_workflow_id_fkey FOREIGN KEY (workflow_id) REFERENCES dwop.workflows(id) ON DELETE CASCADE;


--
-- Name: hook_deliveries hook_deliveries_trigger_id_fkey; Type: FK CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.hook_deliveries
    ADD CONSTRAINT hook_deliveries_trigger_id_fkey FOREIGN KEY (trigger_id) REFERENCES dwop.triggers(id) ON DELETE CASCADE;


--
-- Name: run_log_chunks run_log_chunks_run_id_fkey; Type: FK CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.run_log_chunks
    ADD CONSTRAINT run_log_chunks_run_id_fkey FOREIGN KEY (run_id) REFERENCES dwop.runs(id) ON DELETE CASCADE;


--
-- Name: run_log_chunks run_log_chunks_workflow_id_fkey; Type: FK CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.run_log_chunks
    ADD CONSTRAINT run_log_chunks_workflow_id_fkey FOREIGN KEY (workflow_id) REFERENCES dwop.workflows(id) ON DELETE CASCADE;


--
-- Name: runs runs_task_id_fkey; Type: FK CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.runs
    ADD CONSTRAINT runs_task_id_fkey FOREIGN KEY (task_id) REFERENCES dwop.tasks(id) ON DELETE CASCADE;


--
-- Name: runs runs_workflow_id_fkey; Type: FK CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.runs
    ADD CONSTRAINT runs_workflow_id_fkey FOREIGN KEY (workflow_id) REFERENCES dwop.workflows(id) ON DELETE CASCADE;


--
-- Name: schedule_fires schedule_fires_schedule_id_fkey; Type: FK CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.schedule_fires
    ADD CONSTRAINT schedule_fires_schedule_id_fkey FOREIGN KEY (schedule_id) REFERENCES dwop.schedules(id) ON DELETE CASCADE;


--
-- Name: tasks tasks_workflow_id_fkey; Type: FK CONSTRAINT; Schema: dwop; Owner: -
--

ALTER TABLE ONLY dwop.tasks
    ADD CONSTRAINT tasks_workflow_id_fkey FOREIGN KEY (workflow_id) REFERENCES dwop.workflows(id) ON DELETE CASCADE;


--
-- Name: api_keys; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.api_keys ENABLE ROW LEVEL SECURITY;

--
-- Name: dispatchers; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.dispatchers ENABLE ROW LEVEL SECURITY;

--
-- Name: events; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.events ENABLE ROW LEVEL SECURITY;

--
-- Name: events events_owner_reads; Type: POLICY; Schema: dwop; Owner: -
--

CREATE POLICY events_owner_reads ON dwop.events FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM dwop.workflows w
  WHERE ((w.id = events.workflow_id) AND (w.owner = (( SELECT auth.uid() AS uid))::text)))));


--
-- Name: hook_deliveries; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.hook_deliveries ENABLE ROW LEVEL SECURITY;

--
-- Name: instance_keys; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.instance_keys ENABLE ROW LEVEL SECURITY;

--
-- Name: leases; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.leases ENABLE ROW LEVEL SECURITY;

--
-- Name: outbox; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.outbox ENABLE ROW LEVEL SECURITY;

--
-- Name: pools; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.pools ENABLE ROW LEVEL SECURITY;

--
-- Name: run_log_chunks; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.run_log_chunks ENABLE ROW LEVEL SECURITY;

--
-- Name: runs; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.runs ENABLE ROW LEVEL SECURITY;

--
-- Name: runs runs_owner_reads; Type: POLICY; Schema: dwop; Owner: -
--

CREATE POLICY runs_owner_reads ON dwop.runs FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM dwop.workflows w
  WHERE ((w.id = runs.workflow_id) AND (w.owner = (( SELECT auth.uid() AS uid))::text)))));


--
-- Name: schedule_fires; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.schedule_fires ENABLE ROW LEVEL SECURITY;

--
-- Name: schedules; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.schedules ENABLE ROW LEVEL SECURITY;

--
-- Name: submissions; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.submissions ENABLE ROW LEVEL SECURITY;

--
-- Name: tasks; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.tasks ENABLE ROW LEVEL SECURITY;

--
-- Name: tasks tasks_owner_reads; Type: POLICY; Schema: dwop; Owner: -
--

CREATE POLICY tasks_owner_reads ON dwop.tasks FOR SELECT TO authenticated USING ((EXISTS ( SELECT 1
   FROM dwop.workflows w
  WHERE ((w.id = tasks.workflow_id) AND (w.owner = (( SELECT auth.uid() AS uid))::text)))));


--
-- Name: triggers; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.triggers ENABLE ROW LEVEL SECURITY;

--
-- Name: workflows; Type: ROW SECURITY; Schema: dwop; Owner: -
--

ALTER TABLE dwop.workflows ENABLE ROW LEVEL SECURITY;

--
-- Name: workflows workflows_owner_reads; Type: POLICY; Schema: dwop; Owner: -
--

CREATE POLICY workflows_owner_reads ON dwop.workflows FOR SELECT TO authenticated USING ((owner = (( SELECT auth.uid() AS uid))::text));


--
-- Name: SCHEMA dwop; Type: ACL; Schema: -; Owner: -
--

GRANT USAGE ON SCHEMA dwop TO authenticated;


--
-- Name: FUNCTION acquire_lease(p_name text, p_holder text, p_ttl_seconds integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.acquire_lease(p_name text, p_holder text, p_ttl_seconds integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION advance_schedule(p_schedule_id uuid, p_claimer text, p_from timestamp with time zone, p_next timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.advance_schedule(p_schedule_id uuid, p_claimer text, p_from timestamp with time zone, p_next timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION api_key_owner(p_key_hash text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.api_key_owner(p_key_hash text) FROM PUBLIC;


--
-- Name: FUNCTION append_run_log(p_run_id bigint, p_offset bigint, p_data bytea, p_max_bytes bigint); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.append_run_log(p_run_id bigint, p_offset bigint, p_data bytea, p_max_bytes bigint) FROM PUBLIC;


--
-- Name: FUNCTION cancel_workflow(p_workflow_id uuid, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.cancel_workflow(p_workflow_id uuid, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION claim_due_schedules(p_claimer text, p_batch integer, p_lease_seconds integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.claim_due_schedules(p_claimer text, p_batch integer, p_lease_seconds integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION claim_outbox_events(p_claimer_id text, p_batch_size integer, p_lease_seconds integer, p_now timestamp with time zone, p_topic text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.claim_outbox_events(p_claimer_id text, p_batch_size integer, p_lease_seconds integer, p_now timestamp with time zone, p_topic text) FROM PUBLIC;


--
-- Name: FUNCTION complete_runs(p_run_ids bigint[], p_now timestamp with time zone, p_job_names text[]); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.complete_runs(p_run_ids bigint[], p_now timestamp with time zone, p_job_names text[]) FROM PUBLIC;


--
-- Name: FUNCTION complete_runs_and_start(p_run_ids bigint[], p_dispatcher_id text, p_executor text, p_owner_max_running integer, p_now timestamp with time zone, p_job_names text[]); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.complete_runs_and_start(p_run_ids bigint[], p_dispatcher_id text, p_executor text, p_owner_max_running integer, p_now timestamp with time zone, p_job_names text[]) FROM PUBLIC;


--
-- Name: FUNCTION create_api_key(p_owner text, p_name text, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.create_api_key(p_owner text, p_name text, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION create_schedule(p_owner text, p_name text, p_cron text, p_timezone text, p_source text, p_requirements text, p_inputs jsonb, p_overlap text, p_catchup text, p_next_fire_at timestamp with time zone, p_max_per_owner integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.create_schedule(p_owner text, p_name text, p_cron text, p_timezone text, p_source text, p_requirements text, p_inputs jsonb, p_overlap text, p_catchup text, p_next_fire_at timestamp with time zone, p_max_per_owner integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION create_trigger(p_owner text, p_name text, p_source text, p_requirements text, p_secret text, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.create_trigger(p_owner text, p_name text, p_source text, p_requirements text, p_secret text, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION delete_pool(p_name text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.delete_pool(p_name text) FROM PUBLIC;


--
-- Name: FUNCTION delete_schedule(p_owner text, p_name text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.delete_schedule(p_owner text, p_name text) FROM PUBLIC;


--
-- Name: FUNCTION delete_trigger(p_owner text, p_name text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.delete_trigger(p_owner text, p_name text) FROM PUBLIC;


--
-- Name: FUNCTION enqueue_workflow_callback(p_workflow_id uuid, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.enqueue_workflow_callback(p_workflow_id uuid, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION fail_downstream(p_task_id bigint, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.fail_downstream(p_task_id bigint, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION fail_schedule_fire(p_schedule_id uuid, p_fire_at timestamp with time zone, p_reason text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.fail_schedule_fire(p_schedule_id uuid, p_fire_at timestamp with time zone, p_reason text) FROM PUBLIC;


--
-- Name: FUNCTION finish_workflow_if_done(p_workflow_id uuid, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.finish_workflow_if_done(p_workflow_id uuid, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION finished_runs_since(p_after_at timestamp with time zone, p_after_id bigint, p_limit integer); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.finished_runs_since(p_after_at timestamp with time zone, p_after_id bigint, p_limit integer) FROM PUBLIC;


--
-- Name: FUNCTION forget_dispatchers(p_ids text[]); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.forget_dispatchers(p_ids text[]) FROM PUBLIC;


--
-- Name: FUNCTION heartbeat_dispatcher(p_id text, p_executor text, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.heartbeat_dispatcher(p_id text, p_executor text, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION increase_attempt(p_run_id bigint, p_error_msg text, p_reason text, p_exit_code integer, p_log_tail text, p_non_retryable boolean, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.increase_attempt(p_run_id bigint, p_error_msg text, p_reason text, p_exit_code integer, p_log_tail text, p_non_retryable boolean, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION instance_key(p_name text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.instance_key(p_name text) FROM PUBLIC;


--
-- Name: FUNCTION lease_holder(p_name text, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.lease_holder(p_name text, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION log_event(p_workflow_id uuid, p_kind text, p_task_name text, p_status text, p_attempt integer, p_data jsonb, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.log_event(p_workflow_id uuid, p_kind text, p_task_name text, p_status text, p_attempt integer, p_data jsonb, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION mark_outbox_published(p_claimer_id text, p_ids bigint[], p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.mark_outbox_published(p_claimer_id text, p_ids bigint[], p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION mark_run_running(p_run_id bigint, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.mark_run_running(p_run_id bigint, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION mark_runs_dispatched(p_run_ids bigint[], p_job_names text[], p_started boolean, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.mark_runs_dispatched(p_run_ids bigint[], p_job_names text[], p_started boolean, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION mark_workflow_scheduled(p_id uuid, p_schedule text, p_cancel_previous boolean); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.mark_workflow_scheduled(p_id uuid, p_schedule text, p_cancel_previous boolean) FROM PUBLIC;


--
-- Name: FUNCTION metrics_snapshot(p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.metrics_snapshot(p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION next_outbox_due(p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.next_outbox_due(p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION notify_if_parked(); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.notify_if_parked() FROM PUBLIC;


--
-- Name: FUNCTION notify_outbox(); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.notify_outbox() FROM PUBLIC;


--
-- Name: FUNCTION owner_max_running(p_owner text, p_default integer); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.owner_max_running(p_owner text, p_default integer) FROM PUBLIC;


--
-- Name: FUNCTION owner_running(p_owner text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.owner_running(p_owner text) FROM PUBLIC;


--
-- Name: FUNCTION parked_reason(p_parked text, p_owner text, p_pool text, p_owner_max_running integer); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.parked_reason(p_parked text, p_owner text, p_pool text, p_owner_max_running integer) FROM PUBLIC;


--
-- Name: FUNCTION pool_held(p_pool text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.pool_held(p_pool text) FROM PUBLIC;


--
-- Name: FUNCTION pool_list(); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.pool_list() FROM PUBLIC;


--
-- Name: FUNCTION purge_expired(p_keep interval, p_batch integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.purge_expired(p_keep interval, p_batch integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION purge_schedule_fires(p_keep interval, p_batch integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.purge_schedule_fires(p_keep interval, p_batch integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION quiet_active_runs(p_executor text, p_min_age_seconds integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.quiet_active_runs(p_executor text, p_min_age_seconds integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION reap_lost_runs(p_stale_seconds integer, p_own_id text, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.reap_lost_runs(p_stale_seconds integer, p_own_id text, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION reap_orphaned_runs(p_dispatcher_id text, p_held bigint[], p_grace_seconds integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.reap_orphaned_runs(p_dispatcher_id text, p_held bigint[], p_grace_seconds integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION record_callback_result(p_claimer_id text, p_id bigint, p_error text, p_max_attempts integer, p_backoff_ms integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.record_callback_result(p_claimer_id text, p_id bigint, p_error text, p_max_attempts integer, p_backoff_ms integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION record_hook_delivery(p_trigger_id uuid, p_delivery_id text, p_workflow_id uuid, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.record_hook_delivery(p_trigger_id uuid, p_delivery_id text, p_workflow_id uuid, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION record_schedule_fire(p_schedule_id uuid, p_claimer text, p_from timestamp with time zone, p_fire_at timestamp with time zone, p_outcome text, p_workflow_id uuid, p_reason text, p_missed_through timestamp with time zone, p_missed_count integer, p_missed_reason text, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.record_schedule_fire(p_schedule_id uuid, p_claimer text, p_from timestamp with time zone, p_fire_at timestamp with time zone, p_outcome text, p_workflow_id uuid, p_reason text, p_missed_through timestamp with time zone, p_missed_count integer, p_missed_reason text, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION release_lease(p_name text, p_holder text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.release_lease(p_name text, p_holder text) FROM PUBLIC;


--
-- Name: FUNCTION release_outbox_claims(p_claimer_id text); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.release_outbox_claims(p_claimer_id text) FROM PUBLIC;


--
-- Name: FUNCTION reoffer_parked_tasks(p_owner_max_running integer, p_limit integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.reoffer_parked_tasks(p_owner_max_running integer, p_limit integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION republish_stalled_tasks(p_after_seconds integer, p_waiting integer, p_limit integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.republish_stalled_tasks(p_after_seconds integer, p_waiting integer, p_limit integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION reserve_submission(p_owner text, p_idempotency_key text, p_request_hash text, p_workflow_id uuid, p_callback_url text, p_callback_secret text, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.reserve_submission(p_owner text, p_idempotency_key text, p_request_hash text, p_workflow_id uuid, p_callback_url text, p_callback_secret text, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION retry_runs_as_lost(p_run_ids bigint[], p_error text, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.retry_runs_as_lost(p_run_ids bigint[], p_error text, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION retry_workflow(p_workflow_id uuid, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.retry_workflow(p_workflow_id uuid, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION revoke_api_key(p_owner text, p_id uuid, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.revoke_api_key(p_owner text, p_id uuid, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION run_statuses(p_run_ids bigint[]); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.run_statuses(p_run_ids bigint[]) FROM PUBLIC;


--
-- Name: FUNCTION seal_run_log(p_run_id bigint); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.seal_run_log(p_run_id bigint) FROM PUBLIC;


--
-- Name: FUNCTION set_key_max_running(p_id uuid, p_max_running integer); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.set_key_max_running(p_id uuid, p_max_running integer) FROM PUBLIC;


--
-- Name: FUNCTION set_pool(p_name text, p_slots integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.set_pool(p_name text, p_slots integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION start_cluster_run(p_task_id bigint, p_attempt integer, p_dispatcher_id text, p_executor text, p_max_active integer, p_now timestamp with time zone, p_owner_max_running integer); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.start_cluster_run(p_task_id bigint, p_attempt integer, p_dispatcher_id text, p_executor text, p_max_active integer, p_now timestamp with time zone, p_owner_max_running integer) FROM PUBLIC;


--
-- Name: FUNCTION start_runs(p_task_ids bigint[], p_attempts integer[], p_dispatcher_id text, p_executor text, p_now timestamp with time zone, p_owner_max_running integer); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.start_runs(p_task_ids bigint[], p_attempts integer[], p_dispatcher_id text, p_executor text, p_now timestamp with time zone, p_owner_max_running integer) FROM PUBLIC;


--
-- Name: FUNCTION submit_workflow(p_id uuid, p_owner text, p_name text, p_source text, p_has_requirements boolean, p_inputs text[], p_names text[], p_params jsonb, p_retries integer[], p_timeouts integer[], p_images text[], p_cpus text[], p_memories text[], p_code_offsets bigint[], p_code_lengths integer[], p_pools text[], p_priorities integer[], p_edge_down integer[], p_edge_up integer[], p_backoff_ms integer, p_max_infra_retries integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.submit_workflow(p_id uuid, p_owner text, p_name text, p_source text, p_has_requirements boolean, p_inputs text[], p_names text[], p_params jsonb, p_retries integer[], p_timeouts integer[], p_images text[], p_cpus text[], p_memories text[], p_code_offsets bigint[], p_code_lengths integer[], p_pools text[], p_priorities integer[], p_edge_down integer[], p_edge_up integer[], p_backoff_ms integer, p_max_infra_retries integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION system_stall(p_after_seconds integer, p_alive_seconds integer, p_now timestamp with time zone, p_bus_backlog integer); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.system_stall(p_after_seconds integer, p_alive_seconds integer, p_now timestamp with time zone, p_bus_backlog integer) FROM PUBLIC;


--
-- Name: FUNCTION take_slots(p_kind text, p_name text, p_size integer, p_count integer); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.take_slots(p_kind text, p_name text, p_size integer, p_count integer) FROM PUBLIC;


--
-- Name: FUNCTION update_schedule(p_owner text, p_name text, p_cron text, p_timezone text, p_source text, p_requirements text, p_inputs jsonb, p_overlap text, p_catchup text, p_paused boolean, p_reschedule boolean, p_next_fire_at timestamp with time zone, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.update_schedule(p_owner text, p_name text, p_cron text, p_timezone text, p_source text, p_requirements text, p_inputs jsonb, p_overlap text, p_catchup text, p_paused boolean, p_reschedule boolean, p_next_fire_at timestamp with time zone, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION wake_stalled_outbox(p_stale_seconds integer, p_now timestamp with time zone); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.wake_stalled_outbox(p_stale_seconds integer, p_now timestamp with time zone) FROM PUBLIC;


--
-- Name: FUNCTION workflow_summary_json(p_workflow_id uuid); Type: ACL; Schema: dwop; Owner: -
--

REVOKE ALL ON FUNCTION dwop.workflow_summary_json(p_workflow_id uuid) FROM PUBLIC;


--
-- Name: TABLE events; Type: ACL; Schema: dwop; Owner: -
--

GRANT SELECT ON TABLE dwop.events TO authenticated;


--
-- Name: TABLE runs; Type: ACL; Schema: dwop; Owner: -
--

GRANT SELECT ON TABLE dwop.runs TO authenticated;


--
-- Name: TABLE tasks; Type: ACL; Schema: dwop; Owner: -
--

GRANT SELECT ON TABLE dwop.tasks TO authenticated;


--
-- Name: TABLE workflows; Type: ACL; Schema: dwop; Owner: -
--

GRANT SELECT ON TABLE dwop.workflows TO authenticated;


--
-- PostgreSQL database dump complete
--


