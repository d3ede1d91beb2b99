"""The one place that imports every package's tables, so that metadata (migrations, tests) sees them all."""

from __future__ import annotations

import importlib

__all__ = ["import_all_models"]

MODEL_MODULES = (
    "huimin.audit.models",
    "huimin.auth.models",
    "huimin.campaigns.models",
    "huimin.eligibility.models",
    "huimin.claims.models",
    "huimin.idempotency.models",
    "huimin.merchants.models",
    "huimin.redemptions.models",
    "huimin.ledger.models",
    "huimin.settlement.models",
    "huimin.risk.models",
    "huimin.complaints.models",
    "huimin.supervision.models",
    "huimin.announcements.models",
    "huimin.privacy.models",
    "huimin.reports.models",
    "huimin.allocation.models",
    "huimin.worker.models",
)


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
