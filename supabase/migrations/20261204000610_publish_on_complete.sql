-- The dispatcher that records a run's success starts the tasks it made ready itself, in the same
-- transaction, instead of leaving them to a claimer woken by the outbox's NOTIFY, a message on the bus and
-- a start of their own: one transaction between a task's end and its successor's run (issue 12). The
-- successors' outbox rows are marked published by the dispatcher there: consumed, with no message. At
-- most one task per recorded success is started so, in the slot that success frees; the rest are left to
-- the claimers' fair claims. Admission is start_runs's (20261205000300): a task whose pool is full or
-- whose owner is at its cap is parked, as a delivered one would be. A dispatcher that dies after the
-- commit leaves runs it never began, as it would after any start: they are retried as lost.
-- Returns a row per recorded success (completed_id) and a row per run started (the rest).
create function dwop.complete_runs_and_start(p_run_ids bigint[], p_dispatcher_id text, p_executor text,
  p_owner_max_running int default null, p_now timestamptz default null)
returns table (completed_id bigint, run_id bigint, task_id bigint, attempt int, workflow_id uuid, task_name text,
               params jsonb, options jsonb, timeout_seconds int, has_requirements boolean)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  -- Rows complete_runs writes get ids above this one: the outbox update reads only that end of the key.
  v_last bigint := (select max(o.id) from dwop.outbox o);
  v_runs bigint[];
  v_ready bigint[];
  v_attempts int[];
begin
  select array_agg(c.id) into v_runs from dwop.complete_runs(p_run_ids, v_now) as c (id);
  if v_runs is null then
    return;
  end if;
  return query select r.id, null::bigint, null::bigint, null::int, null::uuid, null::text, null::jsonb,
                      null::jsonb, null::int, null::boolean
               from unnest(v_runs) as r (id);
  -- The tasks these successes queued, highest priority first. The dependents are gathered into one array
  -- first and read by primary key: joined to the unnest of downstream_ids, the planner (which guesses 10
  -- rows for an unnest) matched each of a 2,000-task fan-out's ready tasks against all 2,000 ids.
  select array_agg(x.id order by x.priority desc, x.id), array_agg(x.attempt order by x.priority desc, x.id)
  into v_ready, v_attempts
  from (
    select dt.id, dt.attempt, dt.priority
    from dwop.tasks dt
    where dt.id = any(array(select d.id
                            from dwop.runs r
                            join dwop.tasks t on t.id = r.task_id
                            cross join lateral unnest(t.downstream_ids) as d (id)
                            where r.id = any(v_runs)))
      and dt.status = 'queued' and dt.queued_at = v_now
    order by dt.priority desc, dt.id
    limit cardinality(v_runs)
  ) x;
  if v_ready is null then
    return;
  end if;
  update dwop.outbox o set published_at = v_now, claimed_by = p_dispatcher_id, lease_until = null
  where o.id > coalesce(v_last, 0) and o.topic = 'task.ready' and o.published_at is null
    and (o.payload ->> 'taskId')::bigint = any(v_ready);
  return query
  select null::bigint, s.run_id, v_ready[s.item], v_attempts[s.item], s.workflow_id, s.task_name, s.params,
         s.options, s.timeout_seconds, s.has_requirements
  from dwop.start_runs(v_ready, v_attempts, p_dispatcher_id, p_executor, v_now, p_owner_max_running) s
  where s.created;
end;
$$;

-- A claimer that starts again (same id) frees the rows it had claimed and not published: a claimer
-- publishes them now (the NOTIFY wakes it) rather than after their lease. Returns how many.
create function dwop.release_outbox_claims(p_claimer_id text)
returns int
language plpgsql as $$
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
