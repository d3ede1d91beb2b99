"""The campaign's shared vocabulary: merchant categories, jurisdictions and merchant classes.

Each term has a stable English code (used in data, the API and the database) and its Chinese name
(what officials read and may write in campaign files). `parse` accepts either.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

__all__ = ["Category", "District", "Jurisdiction", "MerchantClass", "TermError"]


class TermError(ValueError):
    """A word that is not one of the campaign's terms."""


class _Term(StrEnum):
    @property
    def label(self) -> str:
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str) -> Self:
        for member in cls:
            if text in (member.value, _LABELS[member]):
                return member
        known = ", ".join(f"{member.value} ({_LABELS[member]})" for member in cls)
        raise TermError(f"unknown {_NOUNS[cls.__name__]} {text!r}; known: {known}")


class Category(_Term):
    """Merchant category (行业类别)."""

    CATERING = "catering"
    RETAIL = "retail"
    LODGING = "lodging"
    SERVICES = "services"
    WHOLESALE = "wholesale"
    CARS = "cars"
    APPLIANCES = "appliances"


class Jurisdiction(_Term):
    """Who reviews a merchant (审核主体): three geographic districts and two administrative zones."""

    YANJIANG = "yanjiang"
    ANYUE = "anyue"
    LEZHI = "lezhi"
    GAOXIN = "gaoxin"
    LINKONG = "linkong"

    @property
    def district(self) -> District:
        """The geographic district it lies in: 高新区 and 临空经济区 are inside 雁江区 (SPEC §1)."""
        return District(self.value) if self.value in District._value2member_map_ else District.YANJIANG


class District(_Term):
    """Geographic district (区县) of the boundary file: where residents are located."""

    YANJIANG = "yanjiang"
    ANYUE = "anyue"
    LEZHI = "lezhi"


class MerchantClass(_Term):
    """Statistical class of a participating merchant (seed 一(五))."""

    ABOVE_SCALE_SERVICES = "above_scale_services"
    ABOVE_QUOTA = "above_quota"
    BELOW_QUOTA_SAMPLED = "below_quota_sampled"
    KEY_CULTIVATION = "key_cultivation"
    COMPLEX_TENANT = "complex_tenant"


_NOUNS = {
    "Category": "category",
    "Jurisdiction": "jurisdiction",
    "District": "district",
    "MerchantClass": "merchant class",
}

_LABELS: dict[_Term, str] = {
    Category.CATERING: "餐饮",
    Category.RETAIL: "零售",
    Category.LODGING: "住宿",
    Category.SERVICES: "服务",
    Category.WHOLESALE: "批发",
    Category.CARS: "汽车",
    Category.APPLIANCES: "家电",
    Jurisdiction.YANJIANG: "雁江区",
    Jurisdiction.ANYUE: "安岳县",
    Jurisdiction.LEZHI: "乐至县",
    Jurisdiction.GAOXIN: "高新区",
    Jurisdiction.LINKONG: "临空经济区",
    District.YANJIANG: "雁江区",
    District.ANYUE: "安岳县",
    District.LEZHI: "乐至县",
    MerchantClass.ABOVE_SCALE_SERVICES: "服务业规上",
    MerchantClass.ABOVE_QUOTA: "限上",
    MerchantClass.BELOW_QUOTA_SAMPLED: "限下抽样",
    MerchantClass.KEY_CULTIVATION: "重点培育",
    MerchantClass.COMPLEX_TENANT: "商业综合体入驻",
}
