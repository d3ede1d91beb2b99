// The overview's charts (Apache ECharts, served from the platform's own node_modules). Data comes in
// data-series attributes rendered by the server; the district boundaries from the packaged GeoJSON.
// Tooltips render in the canvas (renderMode "richText"): no HTML with inline styles, which the
// Content-Security-Policy would refuse.
"use strict";

(() => {
  const INK = "#1d2733";
  const MUTED = "#5d6978";
  const LINE = "#d8dde4";
  const BLUE = "#1f4f8f";
  const RED = "#b5372b";
  const SCALES = {
    claims: ["#eef3fa", "#c4d4ea", "#7fa1cf", "#2a62ad", "#14325a"],
    redemptions: ["#fbf1f0", "#f0c6bf", "#d9776b", "#b5372b", "#7f1d1d"],
  };
  const FONT = '"PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif';
  const charts = [];

  const base = () => ({
    animation: false,
    textStyle: { fontFamily: FONT, color: INK },
    tooltip: { renderMode: "richText", backgroundColor: "#fff", borderColor: LINE, textStyle: { color: INK } },
  });

  const showMessage = (element, text) => {
    element.textContent = "";
    const message = document.createElement("p");
    message.className = "chart-message";
    message.textContent = text;
    element.appendChild(message);
  };

  const axisStyle = {
    axisLine: { lineStyle: { color: LINE } },
    axisLabel: { color: MUTED },
    splitLine: { lineStyle: { color: "#eef1f5" } },
  };

  const dayOption = (data) => ({
    ...base(),
    grid: { left: 48, right: 16, top: 24, bottom: 36 },
    tooltip: { ...base().tooltip, trigger: "axis" },
    xAxis: { type: "category", data: data.labels, ...axisStyle },
    yAxis: { type: "value", minInterval: 1, ...axisStyle },
    series: [{ name: data.name, type: "bar", data: data.values, barMaxWidth: 28, itemStyle: { color: data.color === "red" ? RED : BLUE } }],
  });

  const barOption = (data) => ({
    ...base(),
    grid: { left: 48, right: 16, top: 16, bottom: 48 },
    tooltip: { ...base().tooltip, trigger: "axis" },
    xAxis: { type: "category", data: data.labels, ...axisStyle, axisLabel: { color: MUTED, interval: 0, rotate: data.labels.length > 6 ? 20 : 0 } },
    yAxis: { type: "value", minInterval: 1, ...axisStyle },
    series: [{ type: "bar", data: data.values, barMaxWidth: 36, itemStyle: { color: BLUE } }],
  });

  const mapOption = (data, layer) => {
    const max = Math.max(1, ...data.areas.map((area) => area.value));
    return {
      ...base(),
      tooltip: { ...base().tooltip, trigger: "item", formatter: (item) => `${item.name}: ${Number.isFinite(item.value) ? item.value : 0} ${data.unit}` },
      visualMap: {
        min: 0,
        max,
        left: 8,
        bottom: 8,
        calculable: false,
        itemHeight: 90,
        text: [String(max), "0"],
        textStyle: { color: MUTED },
        inRange: { color: SCALES[layer] || SCALES.claims },
      },
      series: [
        {
          type: "map",
          map: "ziyang",
          nameProperty: "district",
          nameMap: data.nameMap,
          roam: false,
          layoutCenter: ["55%", "50%"],
          layoutSize: "95%",
          // a white halo keeps the names legible on the darkest red
          label: { show: true, color: INK, fontFamily: FONT, fontSize: 13, textBorderColor: "#ffffff", textBorderWidth: 3 },
          itemStyle: { borderColor: "#ffffff", borderWidth: 1.5 },
          emphasis: { label: { color: INK }, itemStyle: { areaColor: "#e7c07a" } },
          select: { disabled: true },
          data: data.areas.map((area) => ({ name: data.nameMap[area.name] || area.name, value: area.value })),
        },
      ],
    };
  };

  const draw = (element, option) => {
    const chart = window.echarts.init(element, null, { renderer: "canvas" });
    chart.setOption(option);
    charts.push(chart);
    return chart;
  };

  // The district map shows claims or redemptions: the switch's links work without script (?map=…);
  // with it, the map changes in place.
  const mapLayer = (element, chart) => {
    const show = (layer) => {
      const data = JSON.parse(element.getAttribute(`data-series-${layer}`));
      chart.setOption(mapOption(data, layer), { notMerge: true });
      element.setAttribute("data-layer", layer);
      for (const link of document.querySelectorAll("[data-map-switch]")) {
        const active = link.getAttribute("data-map-switch") === layer;
        link.classList.toggle("active", active);
        link.setAttribute("aria-pressed", active ? "true" : "false");
      }
      for (const title of document.querySelectorAll("[data-map-title]")) {
        title.hidden = title.getAttribute("data-map-title") !== layer;
      }
    };
    for (const link of document.querySelectorAll("[data-map-switch]")) {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        show(link.getAttribute("data-map-switch"));
      });
    }
  };

  const render = async (element) => {
    const kind = element.getAttribute("data-chart");
    if (kind === "map") {
      if (!window.echarts.getMap("ziyang")) {
        const response = await fetch(element.getAttribute("data-geo"), { credentials: "same-origin" });
        if (!response.ok) throw new Error(`boundaries: HTTP ${response.status}`);
        window.echarts.registerMap("ziyang", await response.json());
      }
      const layer = element.getAttribute("data-layer") || "claims";
      const data = JSON.parse(element.getAttribute(`data-series-${layer}`));
      return mapLayer(element, draw(element, mapOption(data, layer)));
    }
    const data = JSON.parse(element.getAttribute("data-series"));
    if (kind === "days") {
      if (data.values.length === 0) return showMessage(element, data.empty);
      return draw(element, dayOption(data));
    }
    if (kind === "bar") return draw(element, barOption(data));
    return undefined;
  };

  const start = () => {
    if (!window.echarts) return; // the data tables below each chart still show the figures
    for (const element of document.querySelectorAll("[data-chart]")) {
      render(element).catch(() => showMessage(element, element.getAttribute("data-failed")));
    }
    window.addEventListener("resize", () => charts.forEach((chart) => chart.resize()));
    window.addEventListener("beforeprint", () => charts.forEach((chart) => chart.resize()));
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
