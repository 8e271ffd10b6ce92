// The compliance desk's only script (the CSP allows no inline code). The pages work without it;
// it only adds conveniences.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A form submitted once stays submitted: no double verification or sign-in.
  for (const form of document.querySelectorAll("form[data-busy]")) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (button) {
        button.dataset.label = button.textContent;
        button.disabled = true;
        button.textContent = form.dataset.busy;
      }
    });
  }

  // A click anywhere on an event's row opens it (links inside keep their own behaviour).
  for (const row of document.querySelectorAll("tr[data-href]")) {
    row.addEventListener("click", (event) => {
      if (event.target.closest("a, button, input, select")) return;
      const href = row.dataset.href;
      if (href && href.startsWith("/desk/")) window.location.assign(href);
    });
  }

  // Times are shown in UTC; hovering one shows it in the viewer's own time zone.
  for (const el of document.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(when.getTime())) el.title = when.toLocaleString();
  }

  // Empty filter fields stay out of the URL, so shared links show only what was filtered.
  for (const form of document.querySelectorAll("form.filters")) {
    form.addEventListener("submit", () => {
      for (const field of form.querySelectorAll("input[name], select[name]")) {
        if (field.value === "") field.disabled = true;
      }
    });
  }
});

// Coming back through the history (back/forward cache) must not leave fields or buttons disabled.
window.addEventListener("pageshow", () => {
  for (const el of document.querySelectorAll("form [disabled]")) el.disabled = false;
  for (const form of document.querySelectorAll("form[data-busy]")) {
    const button = form.querySelector("button[type=submit]");
    if (button && button.dataset.label) button.textContent = button.dataset.label;
  }
});
