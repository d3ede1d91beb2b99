"""The offline IP-region table: the longest-prefix match of a claim's network, and the CSV file's checks
(every bad row named by row and column, one bad row refusing the file)."""

from __future__ import annotations

import ipaddress

import pytest

from huimin.errors import InvalidInput
from huimin.risk.ip_regions import IpRegion, IpRegionTable, parse_ip_regions


def region(network: str, label: str, in_city: bool = False) -> IpRegion:
    return IpRegion(ipaddress.ip_network(network), label, in_city)


TABLE = IpRegionTable(
    [
        region("171.208.0.0/12", "四川省"),
        region("171.216.0.0/16", "成都市"),
        region("171.216.96.0/20", "雁江区", in_city=True),
        region("171.216.99.128/25", "too narrow to decide a /24"),
        region("2408:8456::/32", "成都市"),
        region("2408:8456:3a00::/40", "雁江区", in_city=True),
    ]
)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("171.216.99.0/24", "雁江区"),  # inside the /20: the most specific entry wins
        ("171.216.10.0/24", "成都市"),  # the /16, not the /12
        ("171.210.1.0/24", "四川省"),
        ("2408:8456:3a01::/48", "雁江区"),
        ("2408:8456:9999::/48", "成都市"),
        ("8.8.8.0/24", None),
        ("2001:db8::/48", None),
        ("not a network", None),
        (None, None),
    ],
)
def test_the_longest_prefix_containing_the_claims_network_wins(
    prefix: str | None, expected: str | None
) -> None:
    found = TABLE.lookup(prefix)
    assert (found.region if found else None) == expected


def test_an_entry_narrower_than_the_claims_network_cannot_decide_it() -> None:
    narrow = IpRegionTable([region("171.216.99.128/25", "somewhere")])
    assert narrow.lookup("171.216.99.0/24") is None
    assert len(TABLE) == 6


def test_a_good_file_parses_in_any_column_order_with_a_bom_and_blank_lines() -> None:
    text = "\ufeffregion,in_city,network,note\n雁江区,true,171.216.96.0/20,x\n\n成都市,否,2408:8456::/32,\n外省,0,1.2.3.4,\n"
    regions = parse_ip_regions(text.encode())
    assert [(str(r.network), r.region, r.in_city) for r in regions] == [
        ("171.216.96.0/20", "雁江区", True),
        ("2408:8456::/32", "成都市", False),
        ("1.2.3.4/32", "外省", False),
    ]


def test_every_bad_row_is_named_by_row_and_column() -> None:
    text = (
        "network,region,in_city\n"
        "171.216.96.0/20,雁江区,true\n"  # row 2: good
        "171.216.96.1/20,雁江区,true\n"  # row 3: host bits
        "not-an-ip,成都市,false\n"  # row 4
        "10.0.0.0/8,,maybe\n"  # row 5: two problems
        "171.216.96.0/20,again,false\n"  # row 6: duplicate of row 2
        f"10.0.0.0/8,{'长' * 65},false\n"  # row 7: too long
    )
    with pytest.raises(InvalidInput) as caught:
        parse_ip_regions(text)
    assert caught.value.code == "invalid_ip_regions"
    assert [(p.field, p.message) for p in caught.value.problems] == [
        ("row 3, network", "host bits set: the network is 171.216.96.0/20"),
        ("row 4, network", caught.value.problems[1].message),
        ("row 5, region", "empty: name the region, or outside"),
        ("row 5, in_city", "true or false (also yes/no, 1/0, 是/否)"),
        ("row 6, network", "171.216.96.0/20 is on row 2 already"),
        ("row 7, region", "at most 64 characters"),
    ]
    assert caught.value.problems[1].message.startswith("not an IP network in CIDR notation")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (b"", "file", "empty"),
        (b"network,region\n1.2.3.0/24,x\n", "row 1", "missing column in_city"),
        ("network,region,in_city\n1.2.3.0/24,成都,false\n".encode("gbk"), "file", "not UTF-8"),
    ],
)
def test_a_file_without_its_header_or_not_utf8_is_refused(data: bytes, field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_ip_regions(data)
    [problem] = caught.value.problems
    assert problem.field == field
    assert message in problem.message


def test_a_header_alone_is_an_empty_table() -> None:
    assert parse_ip_regions("network,region,in_city\n") == []
