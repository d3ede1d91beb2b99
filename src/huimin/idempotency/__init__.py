"""Idempotency keys for money- and stock-moving partner requests (SPEC §5 I4, §11.4)."""
