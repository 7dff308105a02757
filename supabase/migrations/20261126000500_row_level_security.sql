-- Row-level security for Supabase's `authenticated` role: a signed-in user reading DWOP's tables through
-- Supabase (PostgREST, Realtime) sees only the workflows whose owner is its auth.uid(), and their
-- tasks, runs and events. Tables holding secrets or internals (triggers, submissions, api_keys,
-- hook_deliveries, outbox, dispatchers) have RLS and no policy: anon and authenticated never read them;
-- tables of later migrations enable RLS where they are made.
-- DWOP's own processes connect as the tables' owner, which RLS does not restrict. Who may execute DWOP's
-- functions (nobody but their owner) is settled once, for all of them, by 20261204000300.
--
-- On a plain Postgres there is no `authenticated` role and no auth.uid(): this migration makes both
-- (NOLOGIN roles, and an auth.uid() that reads the JWT claims as Supabase's does), so the same policies
-- hold and can be tested there. Where roles may not be created, it skips the grants and policies; the
-- tables then answer no role but their owner.

alter table dwop.workflows enable row level security;
alter table dwop.tasks enable row level security;
alter table dwop.runs enable row level security;
alter table dwop.events enable row level security;
alter table dwop.outbox enable row level security;
alter table dwop.dispatchers enable row level security;
alter table dwop.api_keys enable row level security;
alter table dwop.submissions enable row level security;
alter table dwop.triggers enable row level security;
alter table dwop.hook_deliveries enable row level security;

do $$
begin
  -- Supabase's auth.uid(): the `sub` claim of the request's JWT, as PostgREST sets it.
  if to_regprocedure('auth.uid()') is null then
    create schema if not exists auth;
    create function auth.uid() returns uuid
    language sql stable as $fn$
      select nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                             current_setting('request.jwt.claims', true)::jsonb ->> 'sub'), '')::uuid
    $fn$;
  end if;

  for r in 1..2 loop
    declare
      v_role text := (array['anon', 'authenticated'])[r];
    begin
      if not exists (select 1 from pg_roles where rolname = v_role) then
        execute format('create role %I nologin noinherit', v_role);
      end if;
    exception
      -- Another database of the same cluster made it in the meantime.
      when duplicate_object or unique_violation then null;
      when insufficient_privilege then
        raise notice 'cannot create role %: no row-level security policies for it', v_role;
    end;
  end loop;

  if exists (select 1 from pg_roles where rolname = 'anon') then
    revoke all on all tables in schema dwop from anon;
    alter default privileges in schema dwop revoke all on tables from anon;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    return;
  end if;

  revoke all on all tables in schema dwop from authenticated;
  alter default privileges in schema dwop revoke all on tables from authenticated;
  grant usage on schema dwop to authenticated;
  grant select on dwop.workflows, dwop.tasks, dwop.runs, dwop.events to authenticated;

  -- `(select auth.uid())` is evaluated once per statement, not once per row.
  create policy workflows_owner_reads on dwop.workflows for select to authenticated
    using (owner = (select auth.uid())::text);
  create policy tasks_owner_reads on dwop.tasks for select to authenticated
    using (exists (select 1 from dwop.workflows w
                   where w.id = tasks.workflow_id and w.owner = (select auth.uid())::text));
  create policy runs_owner_reads on dwop.runs for select to authenticated
    using (exists (select 1 from dwop.workflows w
                   where w.id = runs.workflow_id and w.owner = (select auth.uid())::text));
  create policy events_owner_reads on dwop.events for select to authenticated
    using (exists (select 1 from dwop.workflows w
                   where w.id = events.workflow_id and w.owner = (select auth.uid())::text));
end;
$$;
