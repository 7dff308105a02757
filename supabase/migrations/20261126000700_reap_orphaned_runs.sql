-- A live dispatcher can lose track of a run: the database refused the write that recorded its end, or
-- the start failed and the failure could not be recorded. reap_lost_runs only covers dead dispatchers,
-- so each dispatcher also hands in the runs it still holds, and its other active local runs older than
-- the grace period are retried as lost (by retry_runs_as_lost of 20261126000300, as reap_lost_runs does).
create function dwop.reap_orphaned_runs(p_dispatcher_id text, p_held bigint[], p_grace_seconds int,
                                        p_now timestamptz default null)
returns int
language sql as $$
  select dwop.retry_runs_as_lost(array(
    select r.id from dwop.runs r
    where r.dispatcher_id = p_dispatcher_id and r.executor = 'local'
      and r.status in ('starting', 'dispatched', 'running')
      and r.id <> all(coalesce(p_held, '{}'))
      and r.created_at < coalesce(p_now, now()) - make_interval(secs => p_grace_seconds)
    order by r.id), 'the dispatcher lost track of this attempt', p_now);
$$;
