-- Webhook triggers: a workflow of its owner that `POST /hooks/<id>` starts with the request body as the
-- input `inputs.payload`, when the request carries a valid HMAC signature made with the trigger's secret.
--
-- Each trigger has a random id, so its URL is unguessable and a 404 there says nothing of anyone's
-- triggers; names are unique per owner; the signature covers the trigger's id, so a delivery signed for
-- one trigger is refused by every other whatever their secrets: secrets need not be unique, and
-- registering depends on nothing but the caller's own triggers. (Migrations 20261126000800 and
-- 20261203000400 once reshaped these tables; their content is folded in here.)

create table dwop.triggers (
  name text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$'),
  owner text not null,
  source text not null,
  requirements text,
  -- The HMAC key of the trigger's deliveries. The server needs the key itself to check a signature, so
  -- it is kept as given; the API never returns it.
  secret text not null check (char_length(secret) >= 16),
  created_at timestamptz not null default now(),
  -- Last, the column order of databases where it was added to an existing table.
  id uuid not null default gen_random_uuid() primary key,
  unique (owner, name)
);

-- Each accepted delivery id of a trigger, with the workflow it starts: a delivery id seen before is a
-- replay. The workflow id is reserved before the workflow is submitted, so a sender retrying a delivery
-- whose first request died half-way starts that same workflow, once. Deliveries are recorded per trigger
-- id: a trigger deleted and made again under the same name is another trigger, with another URL, and
-- none of the old one's deliveries.
create table dwop.hook_deliveries (
  delivery_id text not null check (char_length(delivery_id) between 1 and 200),
  workflow_id uuid not null,
  received_at timestamptz not null default now(),
  -- Last, as for triggers.id.
  trigger_id uuid not null references dwop.triggers (id) on delete cascade,
  primary key (trigger_id, delivery_id)
);

-- Registers a trigger of p_owner and returns its id; null when p_owner already has one of that name.
create function dwop.create_trigger(p_owner text, p_name text, p_source text, p_requirements text,
                                    p_secret text, p_now timestamptz default null)
returns uuid
language sql as $$
  insert into dwop.triggers (owner, name, source, requirements, secret, created_at)
  values (p_owner, p_name, p_source, p_requirements, p_secret, coalesce(p_now, now()))
  on conflict (owner, name) do nothing
  returning id
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

-- Records a delivery to trigger p_trigger_id, reserving p_workflow_id for it, or finds the earlier record
-- of the same delivery. Returns the delivery's workflow id and whether that workflow exists yet (true
-- means a replay).
create function dwop.record_hook_delivery(p_trigger_id uuid, p_delivery_id text, p_workflow_id uuid,
                                          p_now timestamptz default null)
returns table (workflow_id uuid, workflow_exists boolean)
language plpgsql as $$
begin
  insert into dwop.hook_deliveries (trigger_id, delivery_id, workflow_id, received_at)
  values (p_trigger_id, p_delivery_id, p_workflow_id, coalesce(p_now, now()))
  on conflict (trigger_id, delivery_id) do nothing;

  return query
  select d.workflow_id, exists (select 1 from dwop.workflows w where w.id = d.workflow_id)
  from dwop.hook_deliveries d
  where d.trigger_id = p_trigger_id and d.delivery_id = p_delivery_id;
end;
$$;
