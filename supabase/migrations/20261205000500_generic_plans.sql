-- The dispatch functions plan their statements once per connection (generic plans) instead of once per
-- call. Postgres plans a function's statement anew for each of its first five calls on a connection,
-- with the call's values, and on after that when those plans looked cheaper than a generic one; for these
-- functions that was about 0.8 ms of a chain task's 2.1-2.5 ms completion (pg_stat_statements, plan time of
-- the nested statements), every time on a process just started (`dwop run`, a dispatcher's first runs).
-- Their statements find rows by primary key from arrays and test states outside the scans (see
-- complete_runs), so one plan serves every call: the hop of bench/sequential.ts went from 5.0-5.3 to
-- 3.5-4.4 ms p50, and the 2,000-task fan-out of bench/throughput.ts did not change.
alter function dwop.complete_runs_and_start(bigint[], text, text, int, timestamptz) set plan_cache_mode = force_generic_plan;
alter function dwop.complete_runs(bigint[], timestamptz) set plan_cache_mode = force_generic_plan;
alter function dwop.start_runs(bigint[], int[], text, text, timestamptz, int) set plan_cache_mode = force_generic_plan;
alter function dwop.mark_runs_dispatched(bigint[], text[], boolean, timestamptz) set plan_cache_mode = force_generic_plan;
