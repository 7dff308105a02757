-- A dispatcher that records a success and starts the successor itself (complete_runs_and_start) marks
-- the successor's outbox row published in the same transaction. Its insert still woke every claimer
-- (outbox_notify), and each claimed nothing, with four queries and a look at the bus's depth, on the path
-- of the successor's start: on a 40-task chain, once per task. The trigger now stays quiet while
-- complete_runs_and_start runs; the function itself notifies at its end when a row inserted meanwhile is
-- still unpublished (the rest of a fan-out, a workflow's callback), so claimers hear of every row that is
-- theirs to publish, as before.
create or replace function dwop.notify_outbox() returns trigger
language plpgsql as $$
begin
  if current_setting('dwop.outbox_quiet', true) is distinct from 'on' then
    perform pg_notify('dwop_outbox', '');
  end if;
  return null;
end;
$$;

create or replace function dwop.complete_runs_and_start(p_run_ids bigint[], p_dispatcher_id text, p_executor text,
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
  perform set_config('dwop.outbox_quiet', 'on', true);
  select array_agg(c.id) into v_runs from dwop.complete_runs(p_run_ids, v_now) as c (id);
  if v_runs is not null then
    return query select r.id, null::bigint, null::bigint, null::int, null::uuid, null::text, null::jsonb,
                        null::jsonb, null::int, null::boolean
                 from unnest(v_runs) as r (id);
    -- The tasks these successes queued, highest priority first. The dependents are gathered into one
    -- array first and read by primary key: joined to the unnest of downstream_ids, the planner (which
    -- guesses 10 rows for an unnest) matched each of a 2,000-task fan-out's ready tasks against all 2,000 ids.
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
