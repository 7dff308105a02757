-- A failed task's downstream tasks are marked upstream_failed in time linear in their number. The
-- recursive walk joined each level to the tasks table as the planner liked: on a fresh database it hashed
-- a sequential scan of the whole table for every level, so a 5,000-task chain whose first task failed took
-- 4.7 s (auto_explain), and a deep chain in a database of millions of tasks would have taken minutes. The
-- walk now goes through the primary key (enable_seqscan off, as 20261205000700 does for the other hot
-- functions); the tasks it reaches are then locked by primary key in id order, as complete_runs locks
-- dependents, and their state tested outside the scan (the index of open tasks, which the update's
-- `status = 'pending'` test led it to read, holds every workflow's open tasks).

create or replace function dwop.fail_downstream(p_task_id bigint, p_now timestamptz)
returns int
language plpgsql
set enable_seqscan = off
as $$
declare
  v_count int;
  v_name text;
  v_ids bigint[];
begin
  select name into v_name from dwop.tasks where id = p_task_id;
  with recursive downstream (id) as (
    select unnest(downstream_ids) from dwop.tasks where id = p_task_id
    union
    select x.id from downstream d join dwop.tasks t on t.id = d.id cross join lateral unnest(t.downstream_ids) x (id)
  )
  select array_agg(d.id) into v_ids from downstream d;
  if v_ids is null then
    return 0;
  end if;
  with found as materialized (
    select t.id, t.status from dwop.tasks t where t.id = any(v_ids) order by t.id for no key update
  ),
  marked as (
    update dwop.tasks t
    set status = 'upstream_failed', finished_at = p_now, error = 'blocked by failed upstream ' || v_name
    from found f
    where t.id = f.id and f.status = 'pending'
    returning t.workflow_id, t.name
  ),
  logged as (
    insert into dwop.events (workflow_id, kind, task_name, status, at)
    select workflow_id, 'task', name, 'upstream_failed', p_now from marked
    returning 1
  )
  select count(*) into v_count from logged;
  return v_count;
end;
$$;
