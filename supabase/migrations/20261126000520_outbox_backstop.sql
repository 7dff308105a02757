-- The claimer's backstop where pg_cron exists (Supabase has it). Postgres cannot publish to RabbitMQ,
-- so the job does what SQL can: it wakes the claimers (NOTIFY dwop_outbox, which they LISTEN on) when an
-- outbox row has been due for a while with no live lease: a notification lost while a claimer was
-- reconnecting, a retry whose backoff ended (that fires no NOTIFY), or a dead claimer's expired lease.
-- It publishes nothing itself: without a running claimer, rows wait (and count) until one starts.

-- Wakes claimers when due, unpublished, unleased (or lease-expired) rows have waited p_stale_seconds
-- or more; returns how many such rows there are.
create function dwop.wake_stalled_outbox(p_stale_seconds int default 10, p_now timestamptz default null)
returns int
language plpgsql as $$
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

-- Schedule it every 10 seconds (pg_cron 1.5+), or every minute on an older pg_cron. pg_cron can only be
-- created in the database named by cron.database_name, with pg_cron in shared_preload_libraries; where
-- that is not so (any plain Postgres), the migration applies without the job.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron')
     and exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    begin
      create extension pg_cron;
    exception
      -- 42704: not preloaded; P0001: another database is cron.database_name; 42501: not allowed.
      when undefined_object or raise_exception or insufficient_privilege then
        raise notice 'pg_cron cannot be enabled here (%): no outbox backstop job', sqlerrm;
    end;
  end if;
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    return;
  end if;
  begin
    perform cron.schedule('dwop-outbox-backstop', '10 seconds', 'select dwop.wake_stalled_outbox()');
  exception when invalid_parameter_value then
    perform cron.schedule('dwop-outbox-backstop', '* * * * *', 'select dwop.wake_stalled_outbox()');
  end;
end;
$$;
