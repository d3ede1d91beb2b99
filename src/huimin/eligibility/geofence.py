"""Geofence (地理围栏): is a claimant inside the city at claim time, and in which district (SPEC §4 rule 8).

The boundary file is in GCJ-02 (国测局坐标, "Mars coordinates"), the obfuscated datum that every map
published in China uses. The payment app reports either the phone's raw GPS fix (WGS-84) or a map SDK's
GCJ-02 position. Around Ziyang the two differ by 380-450 m, so a WGS-84 point is shifted into GCJ-02
before the check. The shift goes that way, never the polygons the other way, because the published
transform is only defined forwards; its inverse is an approximation.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import Any

import shapely
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from huimin.errors import ConfigurationError, InvalidInput, Problem
from huimin.kit.terms import District, TermError

__all__ = ["BOUNDARY_FILE", "Crs", "Geofence", "Location", "default_geofence", "wgs84_to_gcj02"]

BOUNDARY_FILE = "ziyang_districts.geojson"
"""The packaged boundary of 资阳市 by district, in GCJ-02 (see data/NOTICE.md for its source)."""

# The constants of the published transform: the Krasovsky 1940 ellipsoid's semi-major axis (metres) and
# first eccentricity squared. Every implementation in use (Amap, Tencent, eviltransform) has these.
_A = 6378245.0
_EE = 0.00669342162296594323


def _out_of_china(lng: float, lat: float) -> bool:
    """The published transform's rough box: GCJ-02 is not applied outside it, so neither do we."""
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    shift = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    shift += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    shift += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    shift += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return shift


def _transform_lng(x: float, y: float) -> float:
    shift = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    shift += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    shift += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    shift += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return shift


def wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    """A WGS-84 (GPS) position as GCJ-02 `(lng, lat)`: the standard published transform.

    Points outside the transform's rough box around China are returned unchanged, as every map SDK does.
    """
    if _out_of_china(lng, lat):
        return lng, lat
    d_lat = _transform_lat(lng - 105.0, lat - 35.0)
    d_lng = _transform_lng(lng - 105.0, lat - 35.0)
    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lng = (d_lng * 180.0) / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return lng + d_lng, lat + d_lat


class Crs(StrEnum):
    """The coordinate reference system a location was reported in."""

    WGS84 = "wgs84"  # the phone's GPS fix as the receiver reports it
    GCJ02 = "gcj02"  # what Amap, Tencent Maps and WeChat return


@dataclass(frozen=True, slots=True)
class Location:
    """Where a claimant says they are. The CRS has no default: guessing it is the 400 m error to avoid."""

    lng: float
    lat: float
    crs: Crs

    def __post_init__(self) -> None:
        problems = []
        if not _is_coordinate(self.lng, 180.0):
            problems.append(Problem("location.lng", "must be a finite number from -180 to 180"))
        if not _is_coordinate(self.lat, 90.0):
            problems.append(Problem("location.lat", "must be a finite number from -90 to 90"))
        if not isinstance(self.crs, Crs):
            problems.append(Problem("location.crs", f"must be one of {', '.join(Crs)}"))
        if problems:
            raise InvalidInput(problems, code="invalid_location")

    def to_gcj02(self) -> Location:
        """The same place in GCJ-02, the datum of the boundary file."""
        if self.crs is Crs.GCJ02:
            return self
        lng, lat = wgs84_to_gcj02(self.lng, self.lat)
        return Location(lng, lat, Crs.GCJ02)


def _is_coordinate(value: object, limit: float) -> bool:
    # bool is an int, and True is not a longitude
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and -limit <= value <= limit


@dataclass(frozen=True, slots=True)
class _Area:
    """One district's prepared polygon and its bounding box, kept as plain floats for the cheap test."""

    district: District
    polygon: BaseGeometry
    min_lng: float
    min_lat: float
    max_lng: float
    max_lat: float

    def covers(self, lng: float, lat: float) -> bool:
        # intersects, not contains: a point exactly on the boundary counts as inside, which for a point
        # is what covers means, and intersects_xy asks it without building a Point
        return (
            self.min_lng <= lng <= self.max_lng
            and self.min_lat <= lat <= self.max_lat
            and bool(shapely.intersects_xy(self.polygon, lng, lat))
        )


class Geofence:
    """The city's districts as prepared GCJ-02 polygons; a check costs a few microseconds.

    The surveyed district boundaries overlap in slivers up to about 10 m wide, so a point can lie in two
    districts; it then belongs to the first in `District` order, whatever the file's order, so that the
    answer does not depend on how the file was written.
    """

    def __init__(self, polygons: Mapping[District, BaseGeometry]) -> None:
        if not polygons:
            raise ConfigurationError("a geofence needs at least one district")
        areas = []
        for district in District:
            polygon = polygons.get(district)
            if polygon is None:
                continue
            _require_usable(polygon, district)
            shapely.prepare(polygon)
            min_lng, min_lat, max_lng, max_lat = polygon.bounds
            area = _Area(district, polygon, min_lng, min_lat, max_lng, max_lat)
            # GEOS builds a prepared polygon's point index lazily, on the first query, and that build is
            # not thread-safe (libgeos/geos#825); build it here, before the geofence is shared
            area.covers((min_lng + max_lng) / 2, (min_lat + max_lat) / 2)
            areas.append(area)
        self._areas = tuple(areas)
        self._min_lng = min(area.min_lng for area in areas)
        self._min_lat = min(area.min_lat for area in areas)
        self._max_lng = max(area.max_lng for area in areas)
        self._max_lat = max(area.max_lat for area in areas)

    @classmethod
    def from_geojson(cls, document: str | bytes) -> Geofence:
        """The geofence of a GeoJSON FeatureCollection with one feature per district, in GCJ-02.

        Every district must be present exactly once: a missing one would silently refuse its residents.
        """
        polygons: dict[District, BaseGeometry] = {}
        for index, feature in enumerate(_features(document)):
            where = f"boundary feature {index}"
            try:
                district = District.parse(str(feature["properties"]["district"]))
            except (TypeError, LookupError, TermError) as error:
                raise ConfigurationError(f"{where}: no known district ({error})") from error
            if district in polygons:
                raise ConfigurationError(f"{where}: district {district.label} appears twice")
            try:
                polygons[district] = shape(feature["geometry"])
            # shapely reports malformed GeoJSON with whatever exception the parse happened to hit
            except (ShapelyError, ValueError, TypeError, LookupError, AttributeError) as error:
                raise ConfigurationError(
                    f"{where} ({district.label}): unreadable geometry ({error})"
                ) from error
        missing = [district.label for district in District if district not in polygons]
        if missing:
            raise ConfigurationError(f"the boundary file lacks {', '.join(missing)}")
        return cls(polygons)

    def district_of(self, location: Location) -> District | None:
        """The district the location lies in, or None when it is outside the city."""
        point = location.to_gcj02()
        lng, lat = point.lng, point.lat
        # most refusals are far away (another city, another province): four comparisons settle them
        if not (self._min_lng <= lng <= self._max_lng and self._min_lat <= lat <= self._max_lat):
            return None
        for area in self._areas:
            if area.covers(lng, lat):
                return area.district
        return None

    def contains(self, location: Location) -> bool:
        """Whether the location is inside the city (any district)."""
        return self.district_of(location) is not None


def _features(document: str | bytes) -> list[dict[str, Any]]:
    try:
        collection = json.loads(document)
    except ValueError as error:
        raise ConfigurationError(f"the boundary file is not JSON ({error})") from error
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise ConfigurationError("the boundary file is not a GeoJSON FeatureCollection")
    features = collection.get("features")
    if not isinstance(features, list) or not all(isinstance(feature, dict) for feature in features):
        raise ConfigurationError("the boundary file's features are not a list of GeoJSON features")
    return features


def _require_usable(polygon: BaseGeometry, district: District) -> None:
    if not isinstance(polygon, Polygon | MultiPolygon) or polygon.is_empty:
        raise ConfigurationError(f"the boundary of {district.label} is not a polygon")
    # predicates on an invalid polygon (self-intersecting ring) give answers GEOS does not promise
    if not polygon.is_valid:
        raise ConfigurationError(
            f"the boundary of {district.label} is not a valid polygon: {shapely.is_valid_reason(polygon)}"
        )


@functools.cache
def default_geofence() -> Geofence:
    """The city's geofence from the packaged boundary file, parsed once per process."""
    boundary = resources.files("huimin.eligibility") / "data" / BOUNDARY_FILE
    return Geofence.from_geojson(boundary.read_bytes())
