"""The offline IP-region table (IP 归属地): which networks are inside the campaign's city and which are
known to be elsewhere, for the location-spoofing rule. Government intranets reach no internet GeoIP
service, so the table is a CSV file the operator imports (`huimin risk ip-regions import FILE.csv`).

Pure: parsing the file and the longest-prefix match. A claim records its client's network (/24 IPv4,
/48 IPv6, `huimin.kit.network`), so a table entry decides a claim only when it contains that whole
network: an entry narrower than /24 (or /48) cannot tell where inside the network the client was.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from huimin.errors import InvalidInput, Problem

__all__ = ["COLUMNS", "REGION_MAX_LENGTH", "IpNetwork", "IpRegion", "IpRegionTable", "parse_ip_regions"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
COLUMNS = ("network", "region", "in_city")
REGION_MAX_LENGTH = 64
_TRUE = frozenset({"true", "yes", "1", "y", "是"})
_FALSE = frozenset({"false", "no", "0", "n", "否"})


@dataclass(frozen=True)
class IpRegion:
    """One row of the table: a network (CIDR), its region's label ("雁江区", "成都市", "outside") and
    whether the region lies inside the campaign's city."""

    network: IpNetwork
    region: str
    in_city: bool


class IpRegionTable:
    """Longest-prefix match over a few thousand networks: one dictionary per (IP version, prefix length),
    keyed by the network's leading bits, so a look-up costs one probe per distinct prefix length."""

    def __init__(self, regions: Iterable[IpRegion]) -> None:
        self._by_length: dict[tuple[int, int], dict[int, IpRegion]] = {}
        for region in regions:
            network = region.network
            bits = network.max_prefixlen - network.prefixlen
            key = (network.version, network.prefixlen)
            self._by_length.setdefault(key, {})[int(network.network_address) >> bits] = region
        # longest first: the most specific entry that contains the network wins
        self._lengths = sorted(self._by_length, key=lambda key: -key[1])

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_length.values())

    def lookup(self, prefix: str | None) -> IpRegion | None:
        """The region of the most specific entry that contains the whole network `prefix` (a claim's
        "203.0.113.0/24"); None when the prefix is unknown to the table or not a network."""
        if not prefix:
            return None
        try:
            network = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            return None
        address = int(network.network_address)
        for version, length in self._lengths:
            if version != network.version or length > network.prefixlen:
                continue
            found = self._by_length[version, length].get(address >> (network.max_prefixlen - length))
            if found is not None:
                return found
        return None


def _problem(row: int, column: str, message: str) -> Problem:
    return Problem(f"row {row}, {column}", message)


def _network(text: str) -> IpNetwork:
    try:
        return ipaddress.ip_network(text)
    except ValueError as error:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"not an IP network in CIDR notation ({error})") from None
        raise ValueError(f"host bits set: the network is {loose}") from None


def parse_ip_regions(data: bytes | str) -> list[IpRegion]:
    """The rows of an IP-region CSV file (UTF-8, a header `network,region,in_city` in any order, extra
    columns ignored). Every bad row is reported by the row number a spreadsheet shows (the header is
    row 1) and its column; one bad row refuses the whole file (`invalid_ip_regions`), since an import
    replaces the whole table."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidInput(
                [Problem("file", f"not UTF-8 text (save the CSV as UTF-8): {error}")],
                code="invalid_ip_regions",
            ) from None
    reader = csv.reader(io.StringIO(data.removeprefix("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise InvalidInput([Problem("file", "empty: expected a header row")], code="invalid_ip_regions")
    names = [name.strip().lower() for name in header]
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise InvalidInput(
            [Problem("row 1", f"missing column {', '.join(missing)} (the header is {', '.join(COLUMNS)})")],
            code="invalid_ip_regions",
        )
    at = {column: names.index(column) for column in COLUMNS}
    problems: list[Problem] = []
    regions: list[IpRegion] = []
    first_row: dict[IpNetwork, int] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        values = {column: cells[at[column]].strip() if at[column] < len(cells) else "" for column in COLUMNS}
        before = len(problems)
        network: IpNetwork | None = None
        try:
            network = _network(values["network"])
        except ValueError as error:
            problems.append(_problem(number, "network", str(error)))
        region = values["region"]
        if not region:
            problems.append(_problem(number, "region", "empty: name the region, or outside"))
        elif len(region) > REGION_MAX_LENGTH:
            problems.append(_problem(number, "region", f"at most {REGION_MAX_LENGTH} characters"))
        flag = values["in_city"].lower()
        if flag not in _TRUE | _FALSE:
            problems.append(_problem(number, "in_city", "true or false (also yes/no, 1/0, 是/否)"))
        if network is not None and network in first_row:
            problems.append(_problem(number, "network", f"{network} is on row {first_row[network]} already"))
        if len(problems) > before or network is None:
            continue
        first_row[network] = number
        regions.append(IpRegion(network=network, region=region, in_city=flag in _TRUE))
    if problems:
        raise InvalidInput(problems, code="invalid_ip_regions", summary="the IP-region file has bad rows")
    return regions
