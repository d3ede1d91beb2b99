"""Protection at release time (OWASP API4 and API6): rate limits held in Redis for all workers, a
bounded claim path that answers `busy` instead of queueing, and the sold-out flag pushed to every
worker. See docs/operations.md (settings) and docs/claims.md (the claim path)."""
