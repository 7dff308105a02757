-- The dispatch path's functions plan with sequential scans off, so that a plan made while a table was
-- still nearly empty is not kept for a connection's life. A connection plans each of their statements once
-- (plan_cache_mode = force_generic_plan, 20261205000500) and Postgres plans a statement again only when a
-- table's statistics change: on a new database, or wherever autovacuum has not yet analyzed the tables
-- (its first pass comes a minute after the start, and never in a database where it is off), `runs` and
-- `tasks` hold a few rows when a dispatcher's first batch is planned, a sequential scan looks cheapest, and
-- every later batch walked every row. In bench/throughput.ts, on a fresh database, 1,016 sequential scans
-- of `runs` read 1.5 million rows for 8,000 tasks (complete_runs's lock and update of its runs, found by
-- primary key; mark_runs_dispatched's) and 217 of `tasks` read 576,000 (notify_if_parked's test for parked
-- tasks, which has a partial index). Every statement of these functions finds its rows through an index,
-- by key or by a partial index; a sequential scan remains where none applies (a table of a few rows, as
-- pools).
alter function dwop.complete_runs_and_start(bigint[], text, text, int, timestamptz) set enable_seqscan = off;
alter function dwop.complete_runs(bigint[], timestamptz) set enable_seqscan = off;
alter function dwop.start_runs(bigint[], int[], text, text, timestamptz, int) set enable_seqscan = off;
alter function dwop.mark_runs_dispatched(bigint[], text[], boolean, timestamptz) set enable_seqscan = off;
alter function dwop.notify_if_parked() set enable_seqscan = off;
alter function dwop.reoffer_parked_tasks(int, int, timestamptz) set enable_seqscan = off;
alter function dwop.finish_workflow_if_done(uuid, timestamptz) set enable_seqscan = off;
alter function dwop.claim_outbox_events(text, int, int, timestamptz, text) set enable_seqscan = off;
alter function dwop.mark_outbox_published(text, bigint[], timestamptz) set enable_seqscan = off;
