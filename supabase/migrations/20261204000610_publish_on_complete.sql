-- The dispatcher that records a run's success publishes the tasks it made ready itself, instead of leaving
-- them to a claimer woken by the outbox's NOTIFY, which would claim them in a transaction of its own: one
-- commit and a wake-up less between a task's end and its successor's start. The outbox rows complete_runs
-- writes are claimed (leased to p_claimer_id) in the same transaction and returned with the run ids. They
-- stay in the outbox until the caller marks them published after the broker's confirm
-- (mark_outbox_published); if it dies first, the lease runs out and a claimer publishes them, as any row.
-- At most one row per recorded success is taken so: the rest are left to the claimers' fair claims.
create function dwop.complete_runs_and_claim(p_run_ids bigint[], p_claimer_id text, p_lease_seconds int,
  p_now timestamptz default null)
returns table (run_id bigint, outbox_id bigint, payload jsonb)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  -- Rows complete_runs writes get ids above this one: the claim reads only that end of the primary key.
  v_last bigint := (select max(o.id) from dwop.outbox o);
  v_runs bigint[];
  v_ready text[];
begin
  select array_agg(c.id) into v_runs from dwop.complete_runs(p_run_ids, v_now) as c (id);
  if v_runs is null then
    return;
  end if;
  return query select r.id, null::bigint, null::jsonb from unnest(v_runs) as r (id);
  -- One task per recorded success at most: a chain's next task goes at once, while a fan-out's other rows
  -- stay for the claimers, whose claims take owners in turn and keep the bus's backlog (pools.md). So the
  -- bus never holds more of an owner's messages than before the success. The few tasks are picked first
  -- (highest priority first), then their rows among the ones written since v_last: matching every new row
  -- against every ready task instead took minutes when a root's success made 100,000 tasks ready. The
  -- dependents are gathered into one array first and read by primary key: joined to the unnest of
  -- downstream_ids, the planner (which guesses 10 rows for an unnest) matched each of a 2,000-task
  -- fan-out's ready tasks against all 2,000 ids, 4 million comparisons (0.4-1.5 s of the root's success).
  select array_agg(x.id::text) into v_ready from (
    select dt.id
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
  return query
  with written as (
    select o.id from dwop.outbox o
    where o.id > coalesce(v_last, 0) and o.topic = 'task.ready' and o.published_at is null
      and o.claimed_by is null and o.payload ->> 'taskId' = any(v_ready)
    order by o.priority desc, o.id
    for update skip locked
  )
  update dwop.outbox o
  set claimed_by = p_claimer_id, lease_until = v_now + make_interval(secs => p_lease_seconds),
      claim_count = o.claim_count + 1
  from written where o.id = written.id
  returning null::bigint, o.id, o.payload;
end;
$$;

-- A claimer or dispatcher that starts again (same id), or one that finds a dead one of its machine, frees
-- the rows that one had claimed and not published: a claimer publishes them now (the NOTIFY wakes it)
-- rather than after their lease. Returns how many.
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
