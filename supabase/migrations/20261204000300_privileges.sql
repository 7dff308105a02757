-- No function of DWOP is executable by PUBLIC, and every table of DWOP has row-level security.
--
-- Migration 20261126000500 revoked EXECUTE from PUBLIC on the functions that existed then and set
-- `alter default privileges in schema dwop revoke ... from public`, which cannot remove the global
-- default that grants EXECUTE to PUBLIC on every new function: a schema's default privileges only add to
-- the global ones. The global default of the role that runs the migrations is changed instead, so the
-- functions later migrations make are born without it; the test over the catalog
-- (test/schema.privileges.test.ts) holds every migration to both rules.

alter default privileges revoke execute on functions from public;
revoke execute on all functions in schema dwop from public;

alter table dwop.leases enable row level security;
