"""Backups and restores of the unit's PostgreSQL, as RDS makes them: WAL archived to S3, base backups
(automated and manual snapshots) with 7-day retention and a cross-region copy, and restores that always
create a new instance and validate it before anyone switches to it."""
