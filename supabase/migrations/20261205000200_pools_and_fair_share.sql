-- Pools, per-owner caps and their waiting tasks (issue 14). Every limit is derived from the runs'
-- states, never kept as a counter: a run holds a slot (a number below its pool's size, runs.pool_slot, and
-- below its owner's cap, runs.owner_slot) exactly while it is starting, dispatched or running, and a
-- unique index over the active runs (runs_pool_slot, runs_owner_slot) keeps two from holding the same
-- one. So a run that ends, is lost, reaped or cancelled gives its slot back without anyone having to
-- remember to. The columns these read (tasks.owner/pool/priority/parked, runs.owner/pool/pool_slot/
-- owner_slot, outbox.owner/priority, api_keys.max_running) are made with their tables; the admission step
-- is start_runs (20261205000300), the fair claim is claim_outbox_events (20261126000300).
--
-- A task that cannot start (pool full, owner at its cap) is parked: it stays queued with `parked` saying
-- why, its message is acknowledged, and reoffer_parked_tasks (called by every claimer pass; a run's end
-- wakes the claimers with NOTIFY dwop_outbox) queues it again once there is room.

-- A named limit on how many attempts of the tasks that name it (@pool("name")) start or run at once.
create table dwop.pools (
  name text primary key check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
  slots int not null check (slots between 0 and 10000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

alter table dwop.pools enable row level security;

-- Open tasks of a pool (DELETE refuses a pool still in use; GET /pools counts the waiting).
create index tasks_open_by_pool on dwop.tasks (pool)
  where pool is not null and status in ('pending', 'queued', 'dispatched', 'running');
-- Parked tasks: what reoffer_parked_tasks reads, and the cheap "is anything parked?" of a run's end.
create index tasks_parked on dwop.tasks (owner, priority desc, id) where parked is not null;

-- Slots of p_pool held by an active run.
create function dwop.pool_held(p_pool text)
returns int
language sql stable as $$
  select count(*)::int from dwop.runs r
  where r.pool = p_pool and r.pool_slot is not null and r.status in ('starting', 'dispatched', 'running');
$$;

-- The most runs p_owner may have active: the largest max_running among its live keys (an operator's
-- override), else p_default (DWOP_OWNER_MAX_RUNNING); null for no cap.
create function dwop.owner_max_running(p_owner text, p_default int)
returns int
language sql stable as $$
  select coalesce((select max(k.max_running) from dwop.api_keys k
                   where k.owner = p_owner and k.revoked_at is null), p_default);
$$;

-- Runs of p_owner that are active.
create function dwop.owner_running(p_owner text)
returns int
language sql stable as $$
  select count(*)::int from dwop.runs r
  where r.owner = p_owner and r.status in ('starting', 'dispatched', 'running');
$$;

-- Takes up to p_count free slots of pool p_name (p_kind 'pool', p_size its size) or of owner p_name's cap
-- (p_kind 'owner', p_size the cap), no more than the limit has room for: a pool's size minus the slots its
-- active runs hold (one at or above a shrunk pool's size counts until its run ends), an owner's cap minus
-- its active runs. Each slot is locked for this transaction by a transaction-scoped advisory lock, so a
-- slot another dispatcher's uncommitted batch holds is skipped, never waited for nor taken twice. A slot
-- locked after its holder committed can still look free to the statement that read the held ones (taken
-- before that commit): the held ones are read again after the locks, with a newer snapshot, and such a
-- slot is given up for another. Lowest first. The unique indexes runs_pool_slot and runs_owner_slot
-- would refuse a slot taken twice.
create function dwop.take_slots(p_kind text, p_name text, p_size int, p_count int)
returns int[]
language plpgsql as $$
declare
  v_key int := hashtext('dwop.slot.' || p_kind || ':' || p_name);
  v_held int[];
  v_room int;
  v_got int[] := '{}';
  v_taken int[];
begin
  loop
    if p_kind = 'pool' then
      v_held := array(select r.pool_slot from dwop.runs r
                      where r.pool = p_name and r.pool_slot is not null
                        and r.status in ('starting', 'dispatched', 'running'));
      v_room := p_size - cardinality(v_held);
    else
      v_held := array(select r.owner_slot from dwop.runs r
                      where r.owner = p_name and r.owner_slot is not null
                        and r.status in ('starting', 'dispatched', 'running'));
      v_room := p_size - dwop.owner_running(p_name);
    end if;
    v_got := array(select g from unnest(v_got) g where g <> all(v_held));
    v_taken := array(select g from generate_series(0, p_size - 1) g
                     where case when g = any(v_held) or g = any(v_got) then false
                                else pg_try_advisory_xact_lock(v_key, g) end
                     limit greatest(0, least(p_count, v_room) - cardinality(v_got)));
    if cardinality(v_taken) = 0 then
      return v_got;
    end if;
    v_got := v_got || v_taken;
  end loop;
end;
$$;

-- Wakes the claimers (which reoffer parked tasks) when any task is parked; called where runs end and
-- where limits grow. One cheap index probe when nothing is parked.
create function dwop.notify_if_parked()
returns void
language plpgsql as $$
begin
  if exists (select 1 from dwop.tasks t where t.parked is not null) then
    perform pg_notify('dwop_outbox', '');
  end if;
end;
$$;

-- Queues again parked tasks that now have room: per pool no more than its free slots, per owner no more
-- than its room under its cap, owners in turn and higher priority first (as claims go). The new outbox
-- rows carry the same (task, attempt); start_runs admits the task or parks it again. Returns how many it
-- queued. One pass at a time; a second caller meanwhile returns 0 at once.
create function dwop.reoffer_parked_tasks(p_owner_max_running int default null, p_limit int default 1000,
                                          p_now timestamptz default null)
returns int
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
  v_count int;
begin
  if not exists (select 1 from dwop.tasks t where t.parked is not null) then
    return 0;
  end if;
  if not pg_try_advisory_xact_lock(hashtext('dwop.reoffer_parked_tasks')) then
    return 0;
  end if;
  with parked as (
    select t.id, t.owner, t.pool, t.priority,
           row_number() over (partition by t.owner order by t.priority desc, t.id) as owner_turn
    from dwop.tasks t where t.parked is not null
  ),
  fair as (
    select p.*, row_number() over (partition by p.pool order by p.owner_turn, p.priority desc, p.id) as pool_turn
    from parked p
  ),
  room as (
    select o.owner, dwop.owner_max_running(o.owner, p_owner_max_running) - dwop.owner_running(o.owner) as n
    from (select distinct owner from parked) o
  ),
  free as (
    select l.name as pool, l.slots - dwop.pool_held(l.name) as n
    from dwop.pools l where l.name in (select pool from parked)
  ),
  picked as (
    select f.id, f.owner_turn, f.priority from fair f
    join room r on r.owner = f.owner
    left join free x on x.pool = f.pool
    where (r.n is null or f.owner_turn <= r.n) and (f.pool is null or f.pool_turn <= coalesce(x.n, 0))
    order by f.owner_turn, f.priority desc, f.id
    limit p_limit
  ),
  reoffered as (
    update dwop.tasks t set parked = null
    from picked k
    where t.id = k.id and t.parked is not null and t.status = 'queued'
    returning t.id, t.attempt, t.owner, t.priority, k.owner_turn
  )
  insert into dwop.outbox (payload, available_at, created_at, owner, priority)
  select jsonb_build_object('taskId', id::text, 'attempt', attempt), v_now, v_now, owner, priority
  from reoffered order by owner_turn, priority desc, id;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

-- Every pool with its slots, the runs holding one, and the open tasks waiting for one.
create function dwop.pool_list()
returns table (name text, slots int, running int, waiting int, created_at timestamptz, updated_at timestamptz)
language sql stable as $$
  select p.name, p.slots, dwop.pool_held(p.name),
         (select count(*)::int from dwop.tasks t
          where t.pool = p.name and t.status = 'queued'
            and t.status in ('pending', 'queued', 'dispatched', 'running')),
         p.created_at, p.updated_at
  from dwop.pools p order by p.name;
$$;

-- Makes pool p_name with p_slots slots, or resizes it. Shrinking never stops a run: a slot at or above
-- the new size held by a run counts until that run ends (start_runs).
create function dwop.set_pool(p_name text, p_slots int, p_now timestamptz default null)
returns table (name text, slots int, running int, waiting int, created_at timestamptz, updated_at timestamptz)
language plpgsql as $$
declare
  v_now timestamptz := coalesce(p_now, now());
begin
  insert into dwop.pools as p (name, slots, created_at, updated_at)
  values (p_name, p_slots, v_now, v_now)
  on conflict on constraint pools_pkey do update set slots = excluded.slots, updated_at = excluded.updated_at;
  perform dwop.notify_if_parked();
  return query select l.* from dwop.pool_list() l where l.name = p_name;
end;
$$;

-- Deletes pool p_name: 'deleted', 'not_found', or 'in_use' (an open task names it; nothing changes).
create function dwop.delete_pool(p_name text)
returns text
language plpgsql as $$
begin
  perform 1 from dwop.pools p where p.name = p_name for update;
  if not found then
    return 'not_found';
  end if;
  if exists (select 1 from dwop.tasks t
             where t.pool = p_name and t.status in ('pending', 'queued', 'dispatched', 'running')) then
    return 'in_use';
  end if;
  delete from dwop.pools p where p.name = p_name;
  return 'deleted';
end;
$$;

-- An operator sets (or with null clears) the cap on running tasks of key p_id's owner; false when there
-- is no live key p_id.
create function dwop.set_key_max_running(p_id uuid, p_max_running int)
returns boolean
language plpgsql as $$
begin
  update dwop.api_keys k set max_running = p_max_running where k.id = p_id and k.revoked_at is null;
  if not found then
    return false;
  end if;
  perform dwop.notify_if_parked();
  return true;
end;
$$;

-- Why a parked task waits, as a sentence (the API and the dashboard show it); null when it is not parked.
create function dwop.parked_reason(p_parked text, p_owner text, p_pool text, p_owner_max_running int)
returns text
language sql stable as $$
  select case p_parked
    when 'pool' then format('waiting for pool %s (%s/%s slots busy)', p_pool, dwop.pool_held(p_pool),
                            coalesce((select p.slots from dwop.pools p where p.name = p_pool), 0))
    when 'owner' then format('waiting for a running slot of owner %s (%s/%s running)', p_owner,
                             dwop.owner_running(p_owner),
                             coalesce(dwop.owner_max_running(p_owner, p_owner_max_running)::text, 'no cap'))
  end;
$$;

revoke execute on all functions in schema dwop from public;
