-- Live logs: while an attempt runs, its worker ships the log in chunks (whole lines) through the API,
-- which keeps them here until the worker has stored the whole log as an object; an attempt that ends
-- without storing it (killed, timed out, cancelled, its dispatcher lost) keeps its chunks, so its log up
-- to that moment stays readable. (It also once made an upstream_failed task name the upstream that blocked
-- it, and a storage refusal of a task's output a failure reason of its own: both folded into
-- 20261126000200 and 20261126000100, before any deployment depended on them.)

create table dwop.run_log_chunks (
  run_id bigint not null references dwop.runs (id) on delete cascade,
  workflow_id uuid not null references dwop.workflows (id) on delete cascade,
  byte_offset bigint not null check (byte_offset >= 0),
  data bytea not null check (length(data) between 1 and 1048576),
  primary key (run_id, byte_offset)
);

create index run_log_chunks_workflow on dwop.run_log_chunks (workflow_id);

alter table dwop.run_log_chunks enable row level security;

-- Keys of this installation that only DWOP's processes read. 'log_stream' signs each run's log-stream
-- token (HMAC of the run id): the dispatcher hands the token to the worker, the API checks it, and no
-- setting has to be shared between them.
create table dwop.instance_keys (
  name text primary key,
  key bytea not null check (length(key) >= 16)
);

alter table dwop.instance_keys enable row level security;

-- gen_random_uuid() draws from the server's strong random source (122 random bits each).
insert into dwop.instance_keys (name, key)
values ('log_stream', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'))
on conflict (name) do nothing;

create function dwop.instance_key(p_name text)
returns bytea
language sql stable as $$
  select key from dwop.instance_keys where name = p_name;
$$;

-- Appends one chunk at byte p_offset of a run's live log. The run's row is locked, so one run's chunks
-- are committed in offset order. Answers the log's size after the call and what happened:
--   'appended'  the chunk was added;
--   'behind'    p_offset is not the log's end (a resend after a lost answer, or a gap): nothing was
--               added, and the worker resumes from the size answered;
--   'ended'     the run has ended: its log takes nothing more;
--   'full'      the chunk would take the live log past p_max_bytes (the stored object still holds all);
--   'no_run'    no such run.
create function dwop.append_run_log(p_run_id bigint, p_offset bigint, p_data bytea, p_max_bytes bigint)
returns table (result text, size bigint)
language plpgsql as $$
declare
  v_run dwop.runs%rowtype;
  v_size bigint;
begin
  select * into v_run from dwop.runs where id = p_run_id for no key update;
  if not found then
    return query select 'no_run'::text, 0::bigint;
    return;
  end if;
  select coalesce(max(byte_offset + length(data)), 0) into v_size
  from dwop.run_log_chunks where run_id = p_run_id;
  if v_run.status not in ('starting', 'dispatched', 'running') then
    return query select 'ended'::text, v_size;
  elsif p_offset <> v_size then
    return query select 'behind'::text, v_size;
  elsif v_size + length(p_data) > p_max_bytes then
    return query select 'full'::text, v_size;
  else
    insert into dwop.run_log_chunks (run_id, workflow_id, byte_offset, data)
    values (p_run_id, v_run.workflow_id, p_offset, p_data);
    return query select 'appended'::text, v_size + length(p_data);
  end if;
end;
$$;

-- The worker has stored the whole log as an object: the chunks are no longer needed.
create function dwop.seal_run_log(p_run_id bigint)
returns int
language plpgsql as $$
declare
  v_count int;
begin
  delete from dwop.run_log_chunks where run_id = p_run_id;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;
