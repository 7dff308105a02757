-- Half of each outbox page is left free at insert (fillfactor 50; 70 since 20261206000100), so that a
-- claim's update of its rows (claimed_by, lease_until, claim_count: no indexed column) stays on the page:
-- a HOT update, no index entry. A claim updates some 85 rows in one transaction, most of a page's, and
-- the old versions cannot be pruned within it: with 30 % free, fewer than half of those updates were HOT
-- (0.43 a task), each of the others writing a new tuple elsewhere and an entry in each of the table's
-- four indexes. bench/wal.ts, a 2,000-task fan-out in use: outbox updates that are not HOT 1.57 a task
-- against 1.15 (the publish's, which leaves the partial indexes' predicate, always is one), outbox row
-- locks 1.80 against 1.22, all WAL records 60.2 against 56.7 a task. Outbox rows live until retention
-- deletes them once published, so the room costs little space; runs and tasks stay, and keep 70.
alter table dwop.outbox set (fillfactor = 50);
