"""The console's catalogue: every key in both languages, every key a template uses exists, every term
of the vocabulary has its words, and the language is chosen as documented."""

from __future__ import annotations

import re
import string
from enum import StrEnum
from importlib import resources

import pytest

from huimin.auth.principals import Role
from huimin.campaigns.domain import ClaimMode, Issuer
from huimin.claims.domain import RoundStatus
from huimin.console.figures import (
    CLAIM_FIGURES,
    REDEMPTION_FIGURES,
    claims_by_day,
    claims_by_district,
    merchants_by_status,
    redemptions_by_day,
    redemptions_by_district,
)
from huimin.console.i18n import MESSAGES, Translator, choose
from huimin.console.till_pages import REFUSAL_CODES
from huimin.kit.terms import Category, District, Jurisdiction, MerchantClass
from huimin.ledger.domain import AccountKind
from huimin.merchants.domain import Action, MerchantStatus
from huimin.redemptions.domain import RedemptionStatus

CJK = re.compile(r"[\u4e00-\u9fff]")


def _templates() -> dict[str, str]:
    folder = resources.files("huimin.console") / "templates"
    return {
        item.name: item.read_text(encoding="utf-8")
        for item in folder.iterdir()
        if item.name.endswith(".html")
    }


def test_every_message_has_both_languages_with_the_same_fields() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip(), key
        assert en.strip(), key
        fields = [{name for _, name, _, _ in string.Formatter().parse(text) if name} for text in (zh, en)]
        assert fields[0] == fields[1], key


def test_english_has_no_chinese_except_where_intended() -> None:
    # The brand and the language switch name themselves in Chinese on purpose.
    intended = {"app.brand", "app.switch_language", "app.switch_language_title"}
    for key, (_, en) in MESSAGES.items():
        if key not in intended:
            assert not CJK.search(en), key


def test_every_key_a_template_uses_is_in_the_catalogue() -> None:
    used: set[str] = set()
    for name, text in _templates().items():
        keys = set(re.findall(r"""\bt\(\s*["']([a-z_.0-9]+)["']\s*[,)]""", text))
        assert keys or name in {"docs.html", "macros.html"} or "t(" in text, name
        used |= keys
    missing = sorted(key for key in used if key not in MESSAGES)
    assert missing == []


def test_every_figure_and_chart_has_a_label() -> None:
    # A figure's key is its function's name; the overview shows `figure.<key>` (and charts `chart.<key>`).
    for function in (*CLAIM_FIGURES, *REDEMPTION_FIGURES):
        assert f"figure.{function.__name__}" in MESSAGES
    for chart in (
        claims_by_day,
        claims_by_district,
        merchants_by_status,
        redemptions_by_day,
        redemptions_by_district,
    ):
        assert f"chart.{chart.__name__}" in MESSAGES


def test_every_refusal_at_the_till_has_its_message() -> None:
    for code in REFUSAL_CODES:
        assert Translator("zh").term("till.refused", code)
        assert Translator("en").term("till.refused", code)
    assert "已使用" in Translator("zh").term("till.refused", "voucher_used")


def test_templates_hold_no_visible_chinese_outside_the_catalogue() -> None:
    # Every visible string goes through the catalogue; the brand mark (惠) is the one exception.
    for name, text in _templates().items():
        visible = re.sub(r"\{[{%#].*?[}%#]\}", "", text, flags=re.DOTALL)
        assert CJK.findall(visible) in ([], ["惠"]), name


@pytest.mark.parametrize(
    ("kind", "terms"),
    [
        ("role", Role),
        ("jurisdiction", Jurisdiction),
        ("district", District),
        ("category", Category),
        ("merchant_class", MerchantClass),
        ("merchant_status", MerchantStatus),
        ("action", Action),
        ("round_status", RoundStatus),
        ("claim_mode", ClaimMode),
        ("issuer", Issuer),
        ("redemption_status", RedemptionStatus),
        ("account_kind", AccountKind),
    ],
)
def test_every_term_has_its_words(kind: str, terms: type[StrEnum]) -> None:
    for term in terms:
        assert Translator("zh").term(kind, term.value)
        assert Translator("en").term(kind, term.value)
    for event in ("redeemed", "verified", "rejected", "refunded"):
        assert Translator("zh").term("redemption_event", event)
    if kind in ("jurisdiction", "district", "category", "merchant_class"):
        for term in terms:
            assert Translator("zh").term(kind, term.value) == term.label  # type: ignore[attr-defined]


def test_choosing_the_language() -> None:
    assert choose(None, None) == "zh"
    assert choose("en", None) == "en"
    assert choose(None, "en") == "en"
    assert choose("zh", "en") == "zh"  # the query wins over the cookie
    assert choose("fr", "de") == "zh"
    t = Translator("en")
    assert t("app.page_of", page=2, pages=5, total="120") == "Page 2 of 5, 120 in all"
    assert t.html_lang == "en"
    assert Translator().html_lang == "zh-CN"
    with pytest.raises(KeyError):
        t("no.such.key")
