-- DWOP core schema: workflows, tasks and their edges, runs (one per attempt), the transactional outbox,
-- the event log, and dispatcher heartbeats. State changes go through the SQL functions of the next
-- migrations; callers never write these tables directly.

create schema if not exists dwop;

create table dwop.workflows (
  id uuid primary key,
  owner text not null default 'local',
  name text not null,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  source text not null,
  has_requirements boolean not null default false,
  inputs text[] not null default '{}',
  task_count int not null check (task_count > 0),
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint workflows_finished_at_iff_terminal
    check ((status in ('succeeded', 'failed', 'cancelled')) = (finished_at is not null))
);

create index workflows_owner_created on dwop.workflows (owner, created_at desc, id desc);
create index workflows_status_created on dwop.workflows (status, created_at desc, id desc);

create table dwop.tasks (
  id bigint generated always as identity primary key,
  workflow_id uuid not null references dwop.workflows (id) on delete cascade,
  name text not null check (name ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$'),
  position int not null,
  status text not null
    check (status in ('pending', 'queued', 'dispatched', 'running', 'succeeded', 'failed', 'upstream_failed', 'cancelled')),
  -- The attempt now queued or running; 0 until the task is first queued. Every queueing increments it,
  -- so (task, attempt) names one try for the whole life of the workflow, retries from failure included.
  attempt int not null default 0 check (attempt >= 0),
  failures int not null default 0 check (failures >= 0),
  infra_failures int not null default 0 check (infra_failures >= 0),
  max_retries int not null default 0 check (max_retries between 0 and 100),
  max_infra_retries int not null default 3 check (max_infra_retries >= 0),
  retry_backoff_ms int not null default 1000 check (retry_backoff_ms >= 0),
  timeout_seconds int check (timeout_seconds > 0),
  options jsonb not null default '{}',
  params jsonb not null default '[]',
  -- Fair share, pools and priorities (migration 20261205000200): the workflow's owner, the pool whose
  -- slot an attempt must hold to start (null: none), the order among one owner's ready tasks (higher
  -- first), and why a queued task waits without a message on the bus ('pool' full, 'owner' at its cap).
  owner text not null default 'local',
  pool text,
  priority int not null default 0 check (priority between -100 and 100),
  parked text check (parked in ('pool', 'owner')),
  -- The DAG's edges, both ways, as ids of tasks of the same workflow (written once, at submit). Arrays
  -- instead of an edge table: a 10,000-task submit then writes 10,000 rows, not 30,000 with 40,000
  -- foreign-key checks.
  upstream_ids bigint[] not null default '{}',
  downstream_ids bigint[] not null default '{}',
  pending_inputs int not null check (pending_inputs >= 0 and pending_inputs <= cardinality(upstream_ids)),
  error text,
  created_at timestamptz not null default now(),
  queued_at timestamptz,
  dispatched_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  unique (workflow_id, name),
  constraint tasks_queued_has_attempt check (status = 'pending' or attempt >= 1 or status in ('cancelled', 'upstream_failed')),
  constraint tasks_pending_waits check (status <> 'queued' or pending_inputs = 0),
  constraint tasks_parked_is_queued check (parked is null or status = 'queued')
);

-- Open tasks of a workflow: what the end-of-workflow check looks for.
create index tasks_open on dwop.tasks (workflow_id)
  where status in ('pending', 'queued', 'dispatched', 'running');

create table dwop.runs (
  id bigint generated always as identity primary key,
  task_id bigint not null references dwop.tasks (id) on delete cascade,
  workflow_id uuid not null references dwop.workflows (id) on delete cascade,
  attempt int not null check (attempt >= 1),
  status text not null
    check (status in ('starting', 'dispatched', 'running', 'succeeded', 'failed', 'lost', 'cancelled')),
  executor text,
  job_name text,
  dispatcher_id text,
  -- The task's owner, so the per-owner cap counts active runs without a join.
  owner text not null default 'local',
  -- The slot the run holds while it is active (migration 20261205000200): a number below its pool's size
  -- (pool_slot, with its task's pool) and below its owner's cap (owner_slot); null where there is none.
  pool text,
  pool_slot int check (pool_slot >= 0),
  owner_slot int check (owner_slot >= 0),
  exit_code int,
  failure_reason text
    check (failure_reason in ('exit_code', 'timeout', 'oom_killed', 'lost', 'evicted', 'image_pull',
                              'unschedulable', 'worker_error', 'output_rejected')),
  error text,
  log_tail text,
  created_at timestamptz not null default now(),
  dispatched_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  unique (task_id, attempt),
  constraint runs_failed_has_reason check (status not in ('failed', 'lost') or failure_reason is not null)
);

create index runs_active_by_dispatcher on dwop.runs (dispatcher_id)
  where status in ('starting', 'dispatched', 'running');
create index runs_workflow on dwop.runs (workflow_id);
-- The per-owner cap counts an owner's active runs.
create index runs_active_by_owner on dwop.runs (owner) where status in ('starting', 'dispatched', 'running');
-- No two active runs hold the same slot of a pool, or of an owner's cap: the limits hold exactly.
create unique index runs_pool_slot on dwop.runs (pool, pool_slot)
  where pool_slot is not null and status in ('starting', 'dispatched', 'running');
create unique index runs_owner_slot on dwop.runs (owner, owner_slot)
  where owner_slot is not null and status in ('starting', 'dispatched', 'running');

-- One table for everything that must leave the database after a commit: 'task.ready' rows are published
-- to the bus, 'workflow.callback' rows (a workflow submitted with a callback URL has ended) are sent over
-- HTTP, and each try of a callback is recorded here.
create table dwop.outbox (
  id bigint generated always as identity primary key,
  topic text not null default 'task.ready' check (topic in ('task.ready', 'workflow.callback')),
  payload jsonb not null,
  -- A task.ready row's task owner and priority: claims take owners in turn, higher priority first.
  owner text not null default '',
  priority int not null default 0,
  available_at timestamptz not null default now(),
  claimed_by text,
  lease_until timestamptz,
  claim_count int not null default 0,
  published_at timestamptz,
  created_at timestamptz not null default now(),
  delivery_attempts int not null default 0 check (delivery_attempts >= 0),
  last_error text,
  -- Set with published_at when a callback was given up: the row has left the outbox, undelivered.
  gave_up_at timestamptz
);

-- Claims scan only what is unpublished, of one topic, in id order; published rows never enter the index.
-- The topic leads, so one claim function serves both topics with one plan (a partial index per topic
-- would only serve a query that spells the topic as a constant).
create index outbox_unpublished on dwop.outbox (topic, id) where published_at is null;
-- The fair claim's walk: each owner's unpublished rows, highest priority first.
create index outbox_unpublished_fair on dwop.outbox (topic, owner, priority desc, id) where published_at is null;

create table dwop.events (
  id bigint generated always as identity primary key,
  workflow_id uuid not null references dwop.workflows (id) on delete cascade,
  task_name text,
  kind text not null,
  status text,
  attempt int,
  data jsonb,
  at timestamptz not null default now()
);

create index events_workflow on dwop.events (workflow_id, id);

create table dwop.dispatchers (
  id text primary key,
  executor text not null,
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now()
);

-- Wake claimers as soon as outbox rows commit; one notification per statement, not per row.
create function dwop.notify_outbox() returns trigger
language plpgsql as $$
begin
  perform pg_notify('dwop_outbox', '');
  return null;
end;
$$;

create trigger outbox_notify after insert on dwop.outbox
  for each statement execute function dwop.notify_outbox();
