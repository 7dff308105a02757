-- A trigger's secret is its own. A delivery's signature covers its timestamp and body, not the trigger's
-- name, so two triggers sharing a secret would accept each other's deliveries; a second trigger with a
-- secret already in use is refused instead (the API answers 409 secret_in_use). The index is on a digest:
-- a secret may be longer than a btree entry (md5: immutable, and a collision would only refuse a secret).
create unique index triggers_secret_unique on dwop.triggers (md5(secret));

drop function dwop.create_trigger(text, text, text, text, text, timestamptz);

-- Registers a trigger: 'created', 'name_taken' (by anyone: hook URLs share one namespace) or
-- 'secret_in_use' (by any trigger, which says nothing of whose).
create function dwop.create_trigger(p_owner text, p_name text, p_source text, p_requirements text,
                                    p_secret text, p_now timestamptz default null)
returns text
language plpgsql as $$
begin
  if exists (select 1 from dwop.triggers where name = p_name) then
    return 'name_taken';
  end if;
  insert into dwop.triggers (name, owner, source, requirements, secret, created_at)
  values (p_name, p_owner, p_source, p_requirements, p_secret, coalesce(p_now, now()));
  return 'created';
exception when unique_violation then
  -- Also where two requests race for one name or one secret.
  return case when sqlerrm like '%triggers_secret_unique%' then 'secret_in_use' else 'name_taken' end;
end;
$$;
