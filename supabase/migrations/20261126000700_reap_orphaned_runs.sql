-- A live dispatcher can lose track of a run: the database refused the write that recorded its end, or
-- the start failed and the failure could not be recorded. reap_lost_runs only covers dead dispatchers,
-- so each dispatcher also hands in the runs it still holds, and its other active local runs older than
-- the grace period are retried as lost.
create function dwop.reap_orphaned_runs(p_dispatcher_id text, p_held bigint[], p_grace_seconds int,
                                        p_now timestamptz default null)
returns int
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_run bigint;
  v_count int := 0;
begin
  for v_run in
    select r.id from dwop.runs r
    where r.dispatcher_id = p_dispatcher_id and r.executor = 'local'
      and r.status in ('starting', 'dispatched', 'running')
      and r.id <> all(coalesce(p_held, '{}'))
      and r.created_at < v_now - make_interval(secs => p_grace_seconds)
    order by r.id
  loop
    if dwop.increase_attempt(v_run, 'the dispatcher lost track of this attempt', 'lost',
                             null, null, false, v_now) <> 'ignored' then
      v_count := v_count + 1;
    end if;
  end loop;
  return v_count;
end;
$$;
