-- No function of DWOP is executable by PUBLIC, and every table of DWOP has row-level security (each table
-- enables it where it is made; test/schema.privileges.test.ts checks both rules over the catalog).
--
-- Postgres grants EXECUTE to PUBLIC on every new function by the global default privileges, which a
-- schema's default privileges (`alter default privileges in schema dwop`) can only add to, never take
-- from. So every dwop function made so far loses it here, and the global default of the role that runs
-- the migrations loses it too, so functions of later migrations are born without it. Not earlier than
-- here: pg_cron, which 20261126000520 may create, grants its own functions to the roles meant to use
-- them through that same default.

revoke execute on all functions in schema dwop from public;
alter default privileges revoke execute on functions from public;
