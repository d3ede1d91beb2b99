"""Campaigns (活动): funders, voucher batches (券批次) and the round schedule (场次), loaded as data."""
