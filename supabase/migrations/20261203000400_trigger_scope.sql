-- Triggers belong to their owner, and a delivery's signature names the trigger it is for.
--
-- Before: one namespace of trigger names (`POST /hooks/<name>`), and each secret unique across every
-- owner (20261126000800), because a signature covered only the timestamp and body. Registering a trigger
-- then told one owner whether another had a trigger of that name or that secret (409 either way).
--
-- Now each trigger has a random id, its URL is `/hooks/<id>` (unguessable, so a 404 there says nothing
-- of anyone's triggers), names are unique per owner, and the signature covers the trigger's id, so a
-- delivery signed for one trigger is refused by every other whatever their secrets: secrets need not be
-- unique, and registering depends on nothing but the caller's own triggers.

drop index dwop.triggers_secret_unique;

-- A volatile default: each existing trigger gets its own random id.
alter table dwop.triggers add column id uuid not null default gen_random_uuid();

alter table dwop.hook_deliveries drop constraint hook_deliveries_trigger_name_fkey;
alter table dwop.triggers drop constraint triggers_pkey;
alter table dwop.triggers add constraint triggers_pkey primary key (id);
drop index dwop.triggers_owner;
alter table dwop.triggers add constraint triggers_owner_name_key unique (owner, name);

-- Deliveries are recorded per trigger id: a trigger deleted and made again under the same name is
-- another trigger, with another URL, and none of the old one's deliveries.
alter table dwop.hook_deliveries add column trigger_id uuid;
update dwop.hook_deliveries d set trigger_id = t.id from dwop.triggers t where t.name = d.trigger_name;
alter table dwop.hook_deliveries alter column trigger_id set not null;
alter table dwop.hook_deliveries drop column trigger_name;
alter table dwop.hook_deliveries add constraint hook_deliveries_pkey primary key (trigger_id, delivery_id);
alter table dwop.hook_deliveries add constraint hook_deliveries_trigger_id_fkey
  foreign key (trigger_id) references dwop.triggers (id) on delete cascade;

drop function dwop.create_trigger(text, text, text, text, text, timestamptz);

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

drop function dwop.record_hook_delivery(text, text, uuid, timestamptz);

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
