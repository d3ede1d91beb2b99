"""Observability: Prometheus metrics at /metrics, structured logs with request ids, and the probes
/readyz and /healthz. See docs/operations.md."""
