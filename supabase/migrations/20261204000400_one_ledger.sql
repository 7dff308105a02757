-- One migration ledger: DWOP's runner records in the Supabase CLI's supabase_migrations.schema_migrations,
-- as `supabase db push` does (shared/db/migrate.ts moved the versions of the old table there before this
-- migration ran). The table it kept before is dropped, so nothing reads a second list.
drop table if exists public.dwop_schema_migrations;
