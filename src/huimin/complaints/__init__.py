"""Complaints (投诉): registered by the 12345 hotline, the market regulator, the PBOC branch or a resident
through the payment app; routed, due, assigned, handled, resolved and closed."""
