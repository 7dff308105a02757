-- Recovery from a vanished message. A task's message can leave the bus without starting its attempt:
-- another consumer took it (anything holding the broker's credentials can), someone purged the queue, a
-- broker lost a queue that was not replicated. Nothing else would ever publish it again, so the task
-- would stay queued forever. The claimer therefore calls republish_stalled_tasks now and then: a task
-- whose current attempt was published long enough ago and has no run gets a new outbox row for the same
-- (task, attempt), which the claimer publishes as any other. A message that was only late and arrives
-- as well finds the run recorded (start_runs and start_cluster_run are keyed by (task, attempt)) and
-- starts nothing.
--
-- Tasks that wait for good reasons are left alone:
-- - a parked task (its pool is full or its owner at its cap; 20261205000200): it waits in the database,
--   and reoffer_parked_tasks queues it again;
-- - a retry in its backoff, or a row not yet published: its outbox row is still unpublished;
-- - a backlog (every dispatcher full, messages waiting in the broker): the caller passes how many
--   messages the bus holds ready, and a pass republishes no more than the stalled tasks outnumber
--   them. Each waiting message can stand for at most one stalled task, so a task whose message is
--   still in the queue is not counted as lost while that message waits. (A delivery a dispatcher holds
--   unacknowledged for a few seconds is not counted as waiting by either broker: a pass at that moment
--   may republish as many duplicates as deliveries are in hand, which the duplicate check absorbs.)
-- - a task republished already: the next republish of the same attempt waits twice as long as the
--   last (after, 2 x after, 4 x after, ... up to 32 x after), measured from the last publish.
--
-- Not on the pg_cron backstop: only a process holding the bus can tell how many messages wait in it,
-- and only a claimer can publish the rows this writes. Where no claimer runs, nothing could be
-- republished anyway; where one runs, it calls this itself (see cron/republish.ts).

-- The outbox rows of one (task, attempt): how often it was published, and when last.
create index outbox_task_attempt on dwop.outbox (((payload->>'taskId')::bigint), ((payload->>'attempt')::int))
  where topic = 'task.ready';

-- Tasks queued now, by when: the scan below reads only these.
create index tasks_queued on dwop.tasks (queued_at) where status = 'queued';

-- Republishes up to p_limit tasks that are queued, have no run for their current attempt, and whose
-- attempt was last published p_after_seconds ago or more (doubling with each republish), oldest first,
-- but never more than such tasks outnumber p_waiting, the messages the bus holds ready (null: unknown,
-- republish nothing). Returns how many it republished. One pass runs at a time; a second caller
-- meanwhile returns 0 at once.
create function dwop.republish_stalled_tasks(p_after_seconds int, p_waiting int, p_limit int default 100,
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
  if (select count(*) from dwop.tasks t where t.status = 'queued' and t.queued_at <= v_now - v_after)
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
    where t.status = 'queued' and t.queued_at <= v_now - v_after and t.parked is null
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
