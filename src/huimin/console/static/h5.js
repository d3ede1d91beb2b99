// The resident page: a countdown to the next release, counted on the server's clock (the page says
// what time the server had), and the remaining stock refreshed from the public rounds API. Without
// this script the page still shows the release time and the stock as of loading.
"use strict";

// The resident's own page: a claim carries the phone's location (WGS-84), read when the button is
// pressed; without permission the server says that a location is needed.
(() => {
  for (const form of document.querySelectorAll("form[data-locate]")) {
    form.addEventListener("submit", (event) => {
      if (form.dataset.located === "1" || !navigator.geolocation) return;
      event.preventDefault();
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      const send = () => {
        form.dataset.located = "1";
        form.submit();
      };
      navigator.geolocation.getCurrentPosition(
        (position) => {
          form.elements.lng.value = position.coords.longitude.toFixed(6);
          form.elements.lat.value = position.coords.latitude.toFixed(6);
          send();
        },
        send,
        { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 },
      );
    });
  }
})();

(() => {
  const serverNow = Date.parse(document.body.getAttribute("data-server-now") || "");
  const skew = Number.isFinite(serverNow) ? serverNow - Date.now() : 0;
  const now = () => Date.now() + skew;

  const countdown = document.querySelector("[data-countdown]");
  if (countdown) {
    const target = Date.parse(countdown.getAttribute("data-countdown"));
    const label = countdown.getAttribute("data-label");
    const dayWord = countdown.getAttribute("data-day");
    const pad = (value) => String(value).padStart(2, "0");
    const tick = () => {
      const left = Math.max(0, Math.floor((target - now()) / 1000));
      const days = Math.floor(left / 86400);
      const clock = `${pad(Math.floor((left % 86400) / 3600))}:${pad(Math.floor((left % 3600) / 60))}:${pad(left % 60)}`;
      countdown.textContent = `${label} ${days > 0 ? `${days}${dayWord} ` : ""}${clock}`;
      if (left > 0) window.setTimeout(tick, 1000);
    };
    tick();
  }

  const rounds = document.querySelector("[data-rounds]");
  if (!rounds || !window.fetch) return;
  const campaign = rounds.getAttribute("data-rounds");
  const refresh = async () => {
    try {
      const response = await fetch(`/api/v1/rounds?campaign_id=${encodeURIComponent(campaign)}`, {
        credentials: "omit",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) return;
      for (const round of await response.json()) {
        for (const batch of round.batches) {
          const key = `${round.round_id}:${batch.batch_id}`;
          const figure = document.querySelector(`[data-remaining="${key}"]`);
          if (figure) figure.textContent = batch.remaining.toLocaleString("zh-CN");
          const bar = document.querySelector(`[data-bar="${key}"]`);
          if (bar) bar.value = batch.remaining;
        }
      }
    } catch (error) {
      // A dropped connection: the figures stay as they were; the next refresh tries again.
    }
  };
  window.setInterval(refresh, 20000);
})();
