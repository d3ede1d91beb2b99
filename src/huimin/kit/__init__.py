"""Small, pure helpers shared by every domain package: money, time, ids, keyed hashing, shared terms."""
