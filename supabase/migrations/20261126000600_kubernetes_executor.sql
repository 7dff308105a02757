-- The Kubernetes executor: the lease that lets one
-- dispatcher replica observe Jobs; starting a cluster run under a global cap on runs in flight; the
-- reconcile's view of active runs; and what /metrics reads.

-- Named leases with an expiry: one holder at a time, taken over only once the holder stops renewing.
-- Database time decides expiry, so replicas with skewed clocks agree on who holds a lease.
create table dwop.leases (
  name text primary key,
  holder text not null,
  acquired_at timestamptz not null,
  renewed_at timestamptz not null,
  expires_at timestamptz not null,
  check (expires_at > renewed_at)
);

-- Internals: no policy, so anon and authenticated never read it (see 20261126000500).
alter table dwop.leases enable row level security;

-- Takes or renews lease p_name for p_holder for p_ttl_seconds (compare-and-set): succeeds when nobody
-- holds it, p_holder already does, or the holder let it expire. True when p_holder holds it now.
create function dwop.acquire_lease(p_name text, p_holder text, p_ttl_seconds int, p_now timestamptz default null)
returns boolean
language plpgsql as $$
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

-- Gives lease p_name up, if p_holder holds it, so another replica takes over without waiting for expiry.
create function dwop.release_lease(p_name text, p_holder text)
returns boolean
language sql as $$
  with released as (delete from dwop.leases where name = p_name and holder = p_holder returning 1)
  select exists (select 1 from released);
$$;

-- Who holds lease p_name now; null when nobody does.
create function dwop.lease_holder(p_name text, p_now timestamptz default null)
returns text
language sql stable as $$
  select holder from dwop.leases where name = p_name and expires_at > coalesce(p_now, now());
$$;

-- start_runs for executors whose runs outlive the dispatcher (Kubernetes Jobs), under a global cap:
-- - a duplicate delivery finds its run whatever the load, with the run's status and everything needed
--   to (re)create its Job, since a dispatcher may have died between creating the run and the Job;
-- - a task that moved on (cancelled, newer attempt) gives no row;
-- - otherwise, when p_max_active runs of p_executor are active, one row with at_capacity = true;
-- - otherwise the run is created, as start_runs does (or the task parked, with no row: see start_runs).
-- Counting and inserting happen under one transaction-scoped advisory lock, so dispatchers starting
-- runs at once never pass the cap together.
create function dwop.start_cluster_run(p_task_id bigint, p_attempt int, p_dispatcher_id text, p_executor text,
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
    where r.executor = p_executor and r.status in ('starting', 'dispatched', 'running');
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

-- Runs of p_executor still active whose last transition (created or dispatched) is at least
-- p_min_age_seconds old: the reconcile retries those whose Job is gone as lost. The age is measured
-- on database time, like every other timestamp of a run.
create function dwop.quiet_active_runs(p_executor text, p_min_age_seconds int, p_now timestamptz default null)
returns table (run_id bigint, status text, job_name text)
language sql stable as $$
  select r.id, r.status, r.job_name
  from dwop.runs r
  where r.executor = p_executor and r.status in ('starting', 'dispatched', 'running')
    and coalesce(r.dispatched_at, r.created_at) <= coalesce(p_now, now()) - make_interval(secs => p_min_age_seconds)
  order by r.id;
$$;

-- The status of each of the given runs (for Jobs found in the cluster: which of them still matter).
create function dwop.run_statuses(p_run_ids bigint[])
returns table (run_id bigint, status text)
language sql stable as $$
  select r.id, r.status from dwop.runs r where r.id = any(p_run_ids);
$$;

-- ---- metrics ----------------------------------------------------------------------------------------

-- Finished runs are read in (finished_at, id) order with a cursor.
create index runs_finished on dwop.runs (finished_at, id) where finished_at is not null;

-- Gauges read at each scrape: active runs by executor and status, workflows not yet ended by status,
-- and the outbox backlog (rows due and not yet published, and how long the oldest has waited).
create function dwop.metrics_snapshot(p_now timestamptz default null)
returns table (metric text, label text, value double precision)
language sql stable as $$
  select 'runs_active', r.executor || '/' || r.status, count(*)::double precision
  from dwop.runs r where r.status in ('starting', 'dispatched', 'running')
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

-- Runs finished after the cursor (p_after_at, p_after_id), oldest first, with their stage latencies
-- in seconds: queued (the task became ready; known while the task is still on this attempt) ->
-- dispatched -> started -> finished, and whether the task went on to another attempt (a retry).
create function dwop.finished_runs_since(p_after_at timestamptz, p_after_id bigint, p_limit int)
returns table (run_id bigint, finished_at timestamptz, executor text, status text, failure_reason text,
               retried boolean, queued_to_dispatched double precision, dispatched_to_started double precision,
               started_to_finished double precision)
language sql stable as $$
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
