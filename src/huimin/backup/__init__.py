"""Backup and restore (备份与恢复): pg_dump/pg_restore on PostgreSQL, the online backup API on SQLite."""
