-- A local dispatcher that starts retries at once the runs of this machine's dispatchers whose process is
-- gone (dispatcher/dead-neighbours.ts). It made one reap_lost_runs call for each, and their rows stayed
-- until retention deleted them (never, without DWOP_RETENTION_DAYS): every `dwop run` of a home left one,
-- so each start made one call more than the last (19 calls, 45 ms of a 1.5 s `dwop run` after a morning of
-- runs). Now their rows go in one call, and one reap_lost_runs retries their runs with the starting
-- dispatcher's own: it already retries a local run whose dispatcher has no row.
create function dwop.forget_dispatchers(p_ids text[]) returns int language sql as $$
  with gone as (
    delete from dwop.dispatchers d where d.id = any(p_ids) and d.executor = 'local' returning 1
  )
  select count(*)::int from gone;
$$;

revoke execute on function dwop.forget_dispatchers(text[]) from public;
