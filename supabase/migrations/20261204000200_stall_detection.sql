-- Stall detection: whether the system, as the database records it, has stopped publishing or
-- dispatching tasks, and since when. The API answers it on /readyz (and the CLI and the dashboard show
-- it), so a stall is visible wherever the API runs, even where it cannot see the claimer's or the
-- dispatcher's own logs (Supabase Edge). Read-only: it changes nothing.
--
-- - publishing: a task.ready row has been due for p_after_seconds or more and is still unpublished,
--   and nothing has been published since it became due (a claimer cannot reach the broker, or none
--   runs). A backlog that drains is not a stall: each publish moves "since" forward; nor is one a
--   claimer holds back while p_bus_backlog published tasks still wait in the bus.
-- - dispatching: a queued task's message was published p_after_seconds ago or more, no run was
--   recorded for its attempt, and no dispatcher has sent a heartbeat within p_alive_seconds. With a
--   live dispatcher, a published task without a run is a backlog (every slot busy), not a stall.
--
-- Returns no row when neither holds; otherwise one row: what stalled, since when, and how many tasks
-- wait on it.
create function dwop.system_stall(p_after_seconds int, p_alive_seconds int, p_now timestamptz default null,
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
           where t.status = 'queued' and t.parked is null
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
  -- Reads only queued tasks (the partial index tasks_queued) and their attempt's outbox rows
  -- (outbox_task_attempt).
  select min(p.published_at), count(*)::int into v_first_published, v_waiting
  from dwop.tasks t
  cross join lateral (
    select max(o.published_at) as published_at
    from dwop.outbox o
    where o.topic = 'task.ready'
      and (o.payload->>'taskId')::bigint = t.id and (o.payload->>'attempt')::int = t.attempt
  ) p
  where t.status = 'queued' and t.parked is null
    and p.published_at <= v_now - v_after
    and not exists (select 1 from dwop.runs r where r.task_id = t.id and r.attempt = t.attempt);
  if v_waiting > 0 then
    return query select 'dispatching'::text, greatest(v_first_published, v_last_beat), v_waiting;
  end if;
end;
$$;
