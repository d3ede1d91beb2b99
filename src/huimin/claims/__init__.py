"""Claims (领取): flash claims that never over-issue, per-person limits, vouchers, the wallet."""
