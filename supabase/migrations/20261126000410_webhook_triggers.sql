-- Webhook triggers: a named workflow that `POST /hooks/<name>` starts with the request body as the input
-- `inputs.payload`, when the request carries a valid HMAC signature of a known secret.

create table dwop.triggers (
  name text primary key check (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'),
  owner text not null,
  source text not null,
  requirements text,
  -- The HMAC key of the trigger's deliveries. The server needs the key itself to check a signature, so
  -- it is kept as given; the API never returns it.
  secret text not null check (char_length(secret) >= 16),
  created_at timestamptz not null default now()
);

create index triggers_owner on dwop.triggers (owner, name);

-- Each accepted delivery id of a trigger, with the workflow it starts: a delivery id seen before is a
-- replay. The workflow id is reserved before the workflow is submitted, so a sender retrying a delivery
-- whose first request died half-way starts that same workflow, once.
create table dwop.hook_deliveries (
  trigger_name text not null references dwop.triggers (name) on delete cascade,
  delivery_id text not null check (char_length(delivery_id) between 1 and 200),
  workflow_id uuid not null,
  received_at timestamptz not null default now(),
  primary key (trigger_name, delivery_id)
);

-- Registers a trigger; false when the name is taken (by anyone: hook URLs share one namespace).
create function dwop.create_trigger(p_owner text, p_name text, p_source text, p_requirements text,
                                    p_secret text, p_now timestamptz default null)
returns boolean
language plpgsql as $$
begin
  insert into dwop.triggers (name, owner, source, requirements, secret, created_at)
  values (p_name, p_owner, p_source, p_requirements, p_secret, coalesce(p_now, now()))
  on conflict (name) do nothing;
  return found;
end;
$$;

-- Deletes one of p_owner's triggers; false when the owner has none of that name.
create function dwop.delete_trigger(p_owner text, p_name text)
returns boolean
language plpgsql as $$
begin
  delete from dwop.triggers where name = p_name and owner = p_owner;
  return found;
end;
$$;

-- Records a delivery, reserving p_workflow_id for it, or finds the earlier record of the same delivery.
-- Returns the delivery's workflow id and whether that workflow exists yet (true means a replay).
create function dwop.record_hook_delivery(p_trigger_name text, p_delivery_id text, p_workflow_id uuid,
                                          p_now timestamptz default null)
returns table (workflow_id uuid, workflow_exists boolean)
language plpgsql as $$
begin
  insert into dwop.hook_deliveries (trigger_name, delivery_id, workflow_id, received_at)
  values (p_trigger_name, p_delivery_id, p_workflow_id, coalesce(p_now, now()))
  on conflict (trigger_name, delivery_id) do nothing;

  return query
  select d.workflow_id, exists (select 1 from dwop.workflows w where w.id = d.workflow_id)
  from dwop.hook_deliveries d
  where d.trigger_name = p_trigger_name and d.delivery_id = p_delivery_id;
end;
$$;
