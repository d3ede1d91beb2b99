"""The ledger (复式记账): balanced transactions of postings in integer fen, balances, deposits, invariant checks."""
