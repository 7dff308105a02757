-- submit_workflow plans its statements generically, as the dispatch functions do (20261205000500). Postgres
-- plans a function's statement anew for each of its first five calls on a connection, with the call's
-- values: for a submit those values are the whole workflow (a column array per task field, the task ids,
-- the edges), which the planner then copied into the plan as constants (auto_explain showed the 10,001 ids
-- of a 10,001-task submit written out in its plan) and read for its estimates. Each of a connection's
-- first five submits paid for that, and a submit usually comes on a connection that made few before. A
-- 10,001-task submit on the machine's Postgres (a scratch script calling Store.submitWorkflow on one
-- connection, three runs each way): 463-480 ms against 495-535 on a new connection's first, 298-340 ms
-- against 347-377 after; page faults of the backend 13,000 against 14,670 and 2,900-4,800 against
-- 7,000-8,000. The statements read their arrays by position and join on the ids they make, so one plan
-- serves every call.
alter function dwop.submit_workflow(uuid, text, text, text, boolean, text[], text[], jsonb, int[], int[], text[],
  text[], text[], bigint[], int[], text[], int[], int[], int[], int, int, timestamptz)
  set plan_cache_mode = force_generic_plan;
