// The till page: one submission per click (the server also answers a repeated form with the first
// receipt), and scanning the voucher's QR code with the camera where the browser can read barcodes.
// A handheld scanner types the code into the field like a keyboard, which needs no script at all.
"use strict";

(() => {
  const form = document.querySelector("[data-till-form]");
  if (!form) return;

  let sent = false;
  form.addEventListener("submit", (event) => {
    if (sent) {
      event.preventDefault();
      return;
    }
    sent = true;
    for (const button of form.querySelectorAll("button[type='submit']")) button.classList.add("busy");
  });

  const scan = form.querySelector("[data-scan]");
  const video = form.querySelector("[data-scanner]");
  const field = form.querySelector("#voucher_code");
  if (!scan || !video || !field || !("BarcodeDetector" in window) || !navigator.mediaDevices) return;
  const offer = async () => {
    // Some browsers name the API but read no QR codes (Chromium on Linux): offer the camera only
    // where it can work.
    const formats = await window.BarcodeDetector.getSupportedFormats();
    if (formats.includes("qr_code")) scan.hidden = false;
  };
  offer().catch(() => {});
  scan.addEventListener("click", async () => {
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (error) {
      field.focus(); // no camera, or refused: the scanner or the keyboard remains
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    const stop = () => {
      stream.getTracks().forEach((track) => track.stop());
      video.hidden = true;
    };
    const look = async () => {
      const found = await detector.detect(video);
      if (found.length > 0) {
        field.value = found[0].rawValue;
        stop();
        document.querySelector("#order_amount")?.focus();
        return;
      }
      window.setTimeout(look, 250);
    };
    look();
  });
})();
