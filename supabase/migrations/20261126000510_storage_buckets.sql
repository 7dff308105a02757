-- The Storage buckets DWOP uses, private, on Supabase: Task_Code (code, requirements, inputs) and
-- Task_Output (outputs and logs). Elsewhere there is no storage schema and nothing to do.

do $$
begin
  if to_regclass('storage.buckets') is null then
    raise notice 'no storage.buckets here (not Supabase): no buckets made';
    return;
  end if;
  insert into storage.buckets (id, name, public)
  values ('Task_Code', 'Task_Code', false), ('Task_Output', 'Task_Output', false)
  on conflict (id) do nothing;
end;
$$;
