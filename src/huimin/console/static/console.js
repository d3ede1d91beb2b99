// Progressive enhancement for every console page. Without this script every page still works:
// forms submit, links navigate; with it, confirmations, auto-submitting filters, printing.
"use strict";

document.documentElement.classList.add("js");

document.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;
  const confirming = target.closest("[data-confirm]");
  if (confirming && !window.confirm(confirming.getAttribute("data-confirm"))) {
    event.preventDefault();
    return;
  }
  if (target.closest("[data-action='print']")) {
    window.print();
  }
});

document.addEventListener("change", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target) return;
  if (target.matches("select[data-autosubmit]") && target.form) {
    target.form.requestSubmit();
  }
  const group = target.getAttribute("data-select-all");
  if (group && target.form) {
    for (const box of target.form.querySelectorAll(`input[type='checkbox'][name='${group}']`)) {
      box.checked = target.checked;
    }
  }
});
