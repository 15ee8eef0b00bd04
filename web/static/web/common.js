// Shared by every page: API calls, times in the viewer's zone, feedback messages.
"use strict";

window.Lab = (function () {
  const NETWORK_ERROR = "The server could not be reached. Check your connection and try again.";
  const FLASH_KEY = "lab.flash";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // One API call. Resolves to {ok, status, data}; never rejects.
  async function api(method, url, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (opts.bearer) {
      headers.Authorization = "Bearer " + opts.bearer;
    } else if (method !== "GET") {
      headers["X-CSRFToken"] = csrfToken();
    }
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    let response;
    try {
      response = await fetch(url, {
        method: method,
        headers: headers,
        body: body,
        credentials: opts.bearer ? "omit" : "same-origin",
      });
    } catch (error) {
      return { ok: false, status: 0, data: { code: "network", detail: NETWORK_ERROR } };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data: data };
  }

  // What to tell the user about a refusal: the server's own words whenever it sent them.
  function errorText(result) {
    if (result.data && typeof result.data.detail === "string" && result.data.detail) {
      return result.data.detail;
    }
    if (result.status === 0) return NETWORK_ERROR;
    return "The server answered with an error (" + result.status + "). Try again in a moment.";
  }

  const formats = {
    datetime: { weekday: "short", day: "numeric", month: "short", year: "numeric",
      hour: "2-digit", minute: "2-digit" },
    date: { weekday: "long", day: "numeric", month: "long", year: "numeric" },
    day: { weekday: "short", day: "numeric", month: "short" },
    time: { hour: "2-digit", minute: "2-digit" },
  };
  const formatters = {};
  function format(date, style) {
    if (!formatters[style]) {
      formatters[style] = new Intl.DateTimeFormat(undefined, formats[style]);
    }
    return formatters[style].format(date);
  }

  function timeZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "your time zone";
    } catch (error) {
      return "your time zone";
    }
  }

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() &&
      a.getDate() === b.getDate();
  }

  // Rewrite the server's UTC <time data-local> elements in the viewer's zone.
  function localise(root) {
    (root || document).querySelectorAll("time[data-local]").forEach(function (el) {
      const when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      let style = el.dataset.local;
      if (style === "end") {
        const start = new Date(el.dataset.start);
        style = !isNaN(start) && sameDay(start, when) ? "time" : "datetime";
      }
      el.textContent = format(when, style);
    });
    document.querySelectorAll("[data-tz-name]").forEach(function (el) {
      el.textContent = timeZone();
    });
  }

  // A local time as ISO 8601 with the viewer's offset, e.g. 2026-03-02T10:00:00+01:00.
  function isoWithOffset(date) {
    const pad = function (n) { return String(Math.abs(n)).padStart(2, "0"); };
    const offset = -date.getTimezoneOffset();
    const sign = offset >= 0 ? "+" : "-";
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) +
      sign + pad(Math.trunc(offset / 60)) + ":" + pad(offset % 60);
  }

  function flash(text, kind) {
    const area = document.getElementById("flash");
    if (!area) return;
    const p = document.createElement("p");
    p.className = "flash flash-" + (kind || "info");
    p.textContent = text;
    area.replaceChildren(p);
  }

  // Shown by the next page this tab loads (after a reload that re-renders the lists).
  function flashAfterReload(text, kind) {
    try {
      sessionStorage.setItem(FLASH_KEY, JSON.stringify({ text: text, kind: kind || "success" }));
    } catch (error) { /* storage off: the reloaded page shows the new state anyway */ }
  }

  function showPendingFlash() {
    let pending = null;
    try {
      pending = JSON.parse(sessionStorage.getItem(FLASH_KEY) || "null");
      sessionStorage.removeItem(FLASH_KEY);
    } catch (error) {
      pending = null;
    }
    if (pending && pending.text) flash(pending.text, pending.kind);
  }

  function showBox(el, text) {
    el.textContent = text;
    el.hidden = !text;
  }

  function setupCopyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", async function () {
        const input = document.getElementById(button.dataset.copy);
        input.select();
        try {
          await navigator.clipboard.writeText(input.value);
          flash("Copied.", "success");
        } catch (error) {
          flash("Selected: press Ctrl+C (or ⌘C) to copy.", "info");
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localise(document);
    showPendingFlash();
    setupCopyButtons();
  });

  return {
    api: api,
    errorText: errorText,
    format: format,
    timeZone: timeZone,
    sameDay: sameDay,
    localise: localise,
    isoWithOffset: isoWithOffset,
    flash: flash,
    flashAfterReload: flashAfterReload,
    showBox: showBox,
  };
})();
