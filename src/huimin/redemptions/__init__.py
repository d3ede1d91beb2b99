"""Redemption at the till (核销): the signed terminal API, scope and threshold rules, stacking with the
merchant's own promotions, refunds, big-ticket invoices and their county verification."""
