"""The integrity commitment (承诺书) merchants accept: seed 五(一) and 六(十), versioned and hashed."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from huimin.errors import HuiminError
from huimin.merchants.service import COMMITMENT_VERSION, commitment_text


def test_the_current_text_is_identified_by_version_and_sha256() -> None:
    text = commitment_text()
    raw = (resources.files("huimin.merchants") / "commitment-v1.zh.md").read_bytes()
    assert (text.version, COMMITMENT_VERSION) == ("v1", "v1")
    assert text.sha256 == hashlib.sha256(raw).hexdigest()
    assert text.text == raw.decode("utf-8")
    assert "版本：v1" in text.text


@pytest.mark.parametrize(
    "promise",
    [
        "注册地在资阳市",  # registered in Ziyang
        "产品质量",
        "虚假",  # no false advertising
        "变相加价",  # no disguised price increases
        "优惠让利方案",  # a promotion plan
        "同时享受",  # vouchers stack with the merchant's own promotions
        "自愿退出本活动",  # on violation: leave the campaign,
        "不诚信名单",  # the dishonest list,
        "退回已核销的消费券补贴金额",  # return the redeemed subsidy
        "套取",  # no cash-out (seed 五(一))
    ],
)
def test_the_text_makes_the_seeds_promises(promise: str) -> None:
    assert promise in commitment_text().text


@pytest.mark.parametrize("version", ["v0", "../commitment-v1", "v1.zh"])
def test_an_unknown_version_is_not_found(version: str) -> None:
    with pytest.raises(HuiminError) as refused:
        commitment_text(version)
    assert refused.value.code == "unknown_commitment"
