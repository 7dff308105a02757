-- What the HTTP API adds to the schema for its callers: API keys (stored as SHA-256 hashes) and the
-- submission record that carries an Idempotency-Key and an optional completion callback.

-- An API key belongs to one owner. Only its SHA-256 hash is kept; the key itself is shown once, when it
-- is made.
create table dwop.api_keys (
  id uuid primary key default gen_random_uuid(),
  owner text not null check (owner <> ''),
  name text not null check (char_length(name) between 1 and 100),
  key_hash text not null unique check (key_hash ~ '^[0-9a-f]{64}$'),
  -- The first characters of the key, so an owner can tell keys apart without the key.
  prefix text not null,
  -- An operator's override of the owner's cap on running tasks (DWOP_OWNER_MAX_RUNNING; see
  -- 20261205000200): the largest among an owner's live keys applies.
  max_running int check (max_running between 0 and 100000),
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);

create index api_keys_owner on dwop.api_keys (owner, created_at desc);

-- Makes an API key for p_owner and returns it; the only time the key can be read. Usable from psql by
-- an operator (`select * from dwop.create_api_key('alice', 'ci')`) as well as through the API.
-- 244 random bits from two v4 UUIDs (gen_random_uuid draws from a cryptographic source).
create function dwop.create_api_key(p_owner text, p_name text, p_now timestamptz default null)
returns table (id uuid, key text, prefix text, created_at timestamptz)
language plpgsql as $$
declare
  v_key text := 'dwop_' || replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  v_row dwop.api_keys;
begin
  insert into dwop.api_keys (owner, name, key_hash, prefix, created_at)
  values (p_owner, p_name, encode(sha256(convert_to(v_key, 'UTF8')), 'hex'), left(v_key, 12),
          coalesce(p_now, now()))
  returning * into v_row;
  return query select v_row.id, v_key, v_row.prefix, v_row.created_at;
end;
$$;

-- Revokes one of p_owner's keys; false when the owner has no such key or it was already revoked.
create function dwop.revoke_api_key(p_owner text, p_id uuid, p_now timestamptz default null)
returns boolean
language plpgsql as $$
begin
  update dwop.api_keys set revoked_at = coalesce(p_now, now())
  where id = p_id and owner = p_owner and revoked_at is null;
  return found;
end;
$$;

-- The owner of the unrevoked key with this SHA-256 hash (hex), or null.
create function dwop.api_key_owner(p_key_hash text)
returns text
language sql stable as $$
  select owner from dwop.api_keys where key_hash = p_key_hash and revoked_at is null;
$$;

-- One row per API submission that has an Idempotency-Key or a completion callback. It is written
-- before the workflow: it reserves the workflow id, so a retried request (same key, same body) submits
-- the same id again and finds the workflow, even when the first request died between the two steps.
create table dwop.submissions (
  workflow_id uuid primary key,
  owner text not null,
  idempotency_key text check (char_length(idempotency_key) between 1 and 255),
  -- SHA-256 (hex) of the request's content: the same key with another body is a conflict.
  request_hash text not null,
  callback_url text check (callback_url ~ '^https?://'),
  -- The server signs callbacks with it, so it is kept as given; the API never returns it.
  callback_secret text,
  created_at timestamptz not null default now(),
  unique (owner, idempotency_key),
  check ((callback_url is null) = (callback_secret is null))
);

-- Reserves p_workflow_id for a submission, or finds the earlier one with the same (owner, key).
-- Returns the submission's workflow id, its request hash, and whether that workflow exists yet.
create function dwop.reserve_submission(p_owner text, p_idempotency_key text, p_request_hash text,
                                        p_workflow_id uuid, p_callback_url text, p_callback_secret text,
                                        p_now timestamptz default null)
returns table (workflow_id uuid, request_hash text, workflow_exists boolean)
language plpgsql as $$
begin
  insert into dwop.submissions (workflow_id, owner, idempotency_key, request_hash, callback_url,
                                callback_secret, created_at)
  values (p_workflow_id, p_owner, p_idempotency_key, p_request_hash, p_callback_url, p_callback_secret,
          coalesce(p_now, now()))
  on conflict (owner, idempotency_key) do nothing;

  return query
  select s.workflow_id, s.request_hash, exists (select 1 from dwop.workflows w where w.id = s.workflow_id)
  from dwop.submissions s
  where (p_idempotency_key is null and s.workflow_id = p_workflow_id)
     or (s.owner = p_owner and s.idempotency_key = p_idempotency_key);
end;
$$;
