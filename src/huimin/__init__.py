"""Huimin 惠民: an end-to-end platform for government consumption-voucher campaigns (政府消费券发放平台)."""

__version__ = "0.1.0"
