-- Schedules: a workflow of its owner started at each time a 5-field cron expression names, in an IANA
-- time zone. The expression is parsed in TypeScript (shared/cron.ts, with croner): the API and the
-- claimers compute `next_fire_at`, and SQL only stores it, claims what is due and records each fire.
--
-- Exactly once per fire time: a claimer claims a due schedule with a lease (FOR UPDATE SKIP LOCKED, so
-- two claimers never hold the same one, and a dead claimer's schedule is claimed again when the lease
-- runs out), records the fire under the primary key (schedule, fire time), which reserves the workflow
-- id of that fire, submits the workflow with that id, then advances `next_fire_at`. A claimer that
-- finds the fire already recorded (the first one died, or its lease ran out) submits the same reserved
-- id, which submit_workflow accepts once; so no fire time starts two workflows, and none is lost.

create table dwop.schedules (
  id uuid primary key default gen_random_uuid(),
  owner text not null,
  name text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'),
  cron text not null check (char_length(cron) between 1 and 200),
  timezone text not null default 'UTC' check (char_length(timezone) between 1 and 100),
  source text not null,
  requirements text,
  -- inputs.NAME -> its text, given to every workflow the schedule starts.
  inputs jsonb not null default '{}' check (jsonb_typeof(inputs) = 'object'),
  overlap text not null default 'skip' check (overlap in ('allow', 'skip', 'cancel_previous')),
  catchup text not null default 'none' check (catchup in ('none', 'latest')),
  paused boolean not null default false,
  -- The next fire time to act on; null when the expression names no later time. Milliseconds, as the
  -- claimers' clocks have them, so a time read back compares equal to itself.
  next_fire_at timestamptz(3),
  claimed_by text,
  lease_until timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (owner, name)
);

create index schedules_due on dwop.schedules (next_fire_at) where not paused;
alter table dwop.schedules enable row level security;

-- One row per fire time acted on, so a user sees what became of each: `started` (its workflow id is
-- reserved when the row is written, before the workflow exists), `failed` (that workflow could not be
-- submitted: `reason` says why), `skipped_overlap` (overlap skip, and a workflow of the schedule had not
-- ended: `reason` names it) or `missed` (catchup passed over the times fire_at..missed_through after
-- downtime; `missed_count` of them, null when over 1,000). A fire time is in at most one row: a
-- missed row is keyed by the first time it covers, and next_fire_at moves past all of them.
create table dwop.schedule_fires (
  schedule_id uuid not null references dwop.schedules (id) on delete cascade,
  fire_at timestamptz(3) not null,
  outcome text not null check (outcome in ('started', 'failed', 'skipped_overlap', 'missed')),
  workflow_id uuid unique,
  reason text,
  missed_through timestamptz(3),
  missed_count int check (missed_count > 0),
  recorded_at timestamptz not null default now(),
  primary key (schedule_id, fire_at),
  check ((workflow_id is not null) = (outcome in ('started', 'failed'))),
  check ((missed_through is not null) = (outcome = 'missed')),
  check (missed_through >= fire_at)
);

alter table dwop.schedule_fires enable row level security;

-- The schedule (by name) that started a workflow; null for every other workflow.
alter table dwop.workflows add column schedule text;
create index workflows_owner_schedule on dwop.workflows (owner, schedule, created_at desc, id desc)
  where schedule is not null;

-- Registers a schedule of p_owner. Returns 'created', 'exists' (p_owner has one of that name) or
-- 'limit' (p_owner has p_max_per_owner already). The owner's schedules are counted under a lock of that
-- owner, so two requests at once cannot both pass the limit.
create function dwop.create_schedule(p_owner text, p_name text, p_cron text, p_timezone text, p_source text,
                                     p_requirements text, p_inputs jsonb, p_overlap text, p_catchup text,
                                     p_next_fire_at timestamptz, p_max_per_owner int,
                                     p_now timestamptz default null)
returns text
language plpgsql as $$
begin
  perform pg_advisory_xact_lock(hashtextextended('dwop.schedules ' || p_owner, 0));
  if exists (select 1 from dwop.schedules where owner = p_owner and name = p_name) then
    return 'exists';
  end if;
  if (select count(*) from dwop.schedules where owner = p_owner) >= p_max_per_owner then
    return 'limit';
  end if;
  insert into dwop.schedules (owner, name, cron, timezone, source, requirements, inputs, overlap, catchup,
                              next_fire_at, created_at, updated_at)
  values (p_owner, p_name, p_cron, p_timezone, p_source, p_requirements, coalesce(p_inputs, '{}'),
          p_overlap, p_catchup, p_next_fire_at, coalesce(p_now, now()), coalesce(p_now, now()));
  return 'created';
end;
$$;

-- Replaces the settings of one of p_owner's schedules (the caller merges a change into what it read).
-- p_next_fire_at replaces next_fire_at only when p_reschedule (the expression or zone changed, or the
-- schedule resumed). False when the owner has no schedule of that name.
create function dwop.update_schedule(p_owner text, p_name text, p_cron text, p_timezone text, p_source text,
                                     p_requirements text, p_inputs jsonb, p_overlap text, p_catchup text,
                                     p_paused boolean, p_reschedule boolean, p_next_fire_at timestamptz,
                                     p_now timestamptz default null)
returns boolean
language plpgsql as $$
begin
  update dwop.schedules
  set cron = p_cron, timezone = p_timezone, source = p_source, requirements = p_requirements,
      inputs = coalesce(p_inputs, '{}'), overlap = p_overlap, catchup = p_catchup, paused = p_paused,
      next_fire_at = case when p_reschedule then p_next_fire_at else next_fire_at end,
      updated_at = coalesce(p_now, now())
  where owner = p_owner and name = p_name;
  return found;
end;
$$;

-- Deletes one of p_owner's schedules and its fire rows; the workflows it started keep its name.
create function dwop.delete_schedule(p_owner text, p_name text)
returns boolean
language plpgsql as $$
begin
  delete from dwop.schedules where owner = p_owner and name = p_name;
  return found;
end;
$$;

-- Claims up to p_batch schedules due at p_now (not paused, next_fire_at reached, no live lease) for
-- p_claimer, for p_lease_seconds. Each comes with the fire already recorded at or after its
-- next_fire_at, if one is (a claimer died or its lease ran out between recording and advancing).
create function dwop.claim_due_schedules(p_claimer text, p_batch int, p_lease_seconds int,
                                         p_now timestamptz default null)
returns table (id uuid, owner text, name text, cron text, timezone text, source text, requirements text,
               inputs jsonb, overlap text, catchup text, next_fire_at timestamptz,
               recorded_fire_at timestamptz, recorded_workflow_id uuid, recorded_outcome text,
               recorded_missed_through timestamptz)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  return query
  with due as (
    select s.id from dwop.schedules s
    where not s.paused and s.next_fire_at <= v_now and (s.lease_until is null or s.lease_until < v_now)
    order by s.next_fire_at
    limit p_batch
    for update skip locked
  ), claimed as (
    update dwop.schedules s
    set claimed_by = p_claimer, lease_until = v_now + make_interval(secs => p_lease_seconds)
    from due where s.id = due.id
    returning s.*
  )
  select c.id, c.owner, c.name, c.cron, c.timezone, c.source, c.requirements, c.inputs, c.overlap, c.catchup,
         c.next_fire_at, f.fire_at, f.workflow_id, f.outcome, f.missed_through
  from claimed c
  left join lateral (
    select f.fire_at, f.workflow_id, f.outcome, f.missed_through from dwop.schedule_fires f
    where f.schedule_id = c.id and f.fire_at >= c.next_fire_at
    order by f.fire_at desc limit 1
  ) f on true;
end;
$$;

-- Records what p_claimer decided for the schedule it holds at next_fire_at p_from: the fire at
-- p_fire_at (p_outcome started, with the workflow id p_workflow_id reserved, or skipped_overlap with
-- p_reason), and, with p_missed_through, the times p_from..p_missed_through it passes over (a missed row
-- keyed by p_from, with p_missed_count and p_missed_reason). p_fire_at null: only missed. Returns the
-- row recorded at p_fire_at (else p_from), this call's or one recorded before at that time, and whether
-- its workflow exists yet; no row when p_claimer no longer holds the schedule at p_from (its lease ran
-- out and another claimer took it, or the schedule was changed), so a stale claimer records nothing.
create function dwop.record_schedule_fire(p_schedule_id uuid, p_claimer text, p_from timestamptz,
                                          p_fire_at timestamptz, p_outcome text, p_workflow_id uuid,
                                          p_reason text, p_missed_through timestamptz, p_missed_count int,
                                          p_missed_reason text, p_now timestamptz default null)
returns table (fire_at timestamptz, outcome text, workflow_id uuid, missed_through timestamptz,
               workflow_exists boolean)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  perform 1 from dwop.schedules s
  where s.id = p_schedule_id and s.claimed_by = p_claimer and s.next_fire_at = p_from
  for update;
  if not found then
    return;
  end if;
  if p_missed_through is not null then
    insert into dwop.schedule_fires (schedule_id, fire_at, outcome, reason, missed_through, missed_count,
                                     recorded_at)
    values (p_schedule_id, p_from, 'missed', p_missed_reason, p_missed_through, p_missed_count, v_now)
    on conflict do nothing;
  end if;
  if p_fire_at is not null then
    insert into dwop.schedule_fires (schedule_id, fire_at, outcome, workflow_id, reason, recorded_at)
    values (p_schedule_id, p_fire_at, p_outcome, p_workflow_id, p_reason, v_now)
    on conflict do nothing;
  end if;

  return query
  select f.fire_at, f.outcome, f.workflow_id, f.missed_through,
         f.workflow_id is not null and exists (select 1 from dwop.workflows w where w.id = f.workflow_id)
  from dwop.schedule_fires f
  where f.schedule_id = p_schedule_id and f.fire_at = coalesce(p_fire_at, p_from);
end;
$$;

-- A recorded fire whose workflow could not be submitted (its file or inputs no longer pass the
-- limits, or it names a pool that is gone): marked failed with the reason, so it is not tried again.
create function dwop.fail_schedule_fire(p_schedule_id uuid, p_fire_at timestamptz, p_reason text)
returns void
language sql as $$
  update dwop.schedule_fires f set outcome = 'failed', reason = p_reason
  where f.schedule_id = p_schedule_id and f.fire_at = p_fire_at and f.outcome = 'started'
    and not exists (select 1 from dwop.workflows w where w.id = f.workflow_id);
$$;

-- Moves a schedule claimed by p_claimer from the fire time p_from to p_next and releases it. False
-- when it has moved meanwhile (another claimer took it after this one's lease ran out, or its
-- expression changed): then this claimer's view is stale and it does nothing.
create function dwop.advance_schedule(p_schedule_id uuid, p_claimer text, p_from timestamptz,
                                      p_next timestamptz)
returns boolean
language plpgsql as $$
begin
  update dwop.schedules set next_fire_at = p_next, claimed_by = null, lease_until = null
  where id = p_schedule_id and claimed_by = p_claimer and next_fire_at = p_from;
  return found;
end;
$$;

-- Marks a workflow as started by the schedule named p_schedule and, with p_cancel_previous (overlap
-- cancel_previous), cancels the owner's other workflows of that schedule that have not ended. The
-- claimer calls it in the transaction of dwop.submit_workflow, when that made the workflow: the
-- previous runs are cancelled exactly when the new one is made, never for a submit that fails.
-- Returns how many it cancelled.
create function dwop.mark_workflow_scheduled(p_id uuid, p_schedule text, p_cancel_previous boolean default false)
returns int
language plpgsql as $$
declare
  v_owner text;
  v_previous uuid;
  v_count int := 0;
begin
  update dwop.workflows set schedule = p_schedule where id = p_id returning owner into v_owner;
  if p_cancel_previous and v_owner is not null then
    for v_previous in
      select w.id from dwop.workflows w
      where w.owner = v_owner and w.schedule = p_schedule and w.id <> p_id and w.status in ('queued', 'running')
      order by w.created_at, w.id
    loop
      perform dwop.cancel_workflow(v_previous);
      v_count := v_count + 1;
    end loop;
  end if;
  return v_count;
end;
$$;

-- Deletes, at most p_batch a call, fire rows of fire times before p_now - p_keep that their schedule
-- has moved past (the fire being acted on is kept whatever its age). Returns how many went.
create function dwop.purge_schedule_fires(p_keep interval, p_batch int default 10000,
                                          p_now timestamptz default null)
returns int
language plpgsql as $$
declare
  v_count int;
begin
  delete from dwop.schedule_fires where (schedule_id, fire_at) in (
    select f.schedule_id, f.fire_at from dwop.schedule_fires f join dwop.schedules s on s.id = f.schedule_id
    where f.fire_at < coalesce(p_now, now()) - p_keep
      and (s.next_fire_at is null or f.fire_at < s.next_fire_at)
    limit p_batch);
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;
