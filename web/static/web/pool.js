// A pool's page: the availability calendar (day and week, in the viewer's zone) and the
// booking form, which posts to the API and shows the server's answer.
"use strict";

(function () {
  const DAY_MS = 86400000;
  const config = JSON.parse(document.getElementById("pool-config").textContent);
  const titles = {};
  config.experiments.forEach(function (e) { titles[e.slug] = e.title; });

  const state = { view: "day", anchor: startOfDay(new Date()), filter: "", request: 0 };
  const grid = document.getElementById("cal-grid");
  const rangeTitle = document.getElementById("cal-range");
  const calStatus = document.getElementById("cal-status");
  const showField = document.querySelector(".cal-show");
  const showSelect = document.getElementById("cal-experiment");

  const form = document.getElementById("booking-form");
  const dateInput = document.getElementById("b-date");
  const timeInput = document.getElementById("b-time");
  const lengthInput = document.getElementById("b-length");
  const experimentSelect = document.getElementById("b-experiment");
  const errorBox = document.getElementById("booking-error");
  const resultBox = document.getElementById("booking-result");

  // --- dates in the viewer's zone -------------------------------------------------------

  function startOfDay(date) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate());
  }

  function addDays(date, days) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days);
  }

  function startOfWeek(date) {
    const monday = (date.getDay() + 6) % 7;
    return addDays(startOfDay(date), -monday);
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function dateValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  }

  function timeValue(date) { return pad(date.getHours()) + ":" + pad(date.getMinutes()); }

  function floorMinute(date) {
    const copy = new Date(date);
    copy.setSeconds(0, 0);
    return copy;
  }

  function ceilMinute(date) {
    const floor = floorMinute(date);
    return floor < date ? new Date(floor.getTime() + 60000) : floor;
  }

  function range() {
    if (state.view === "week") {
      const start = startOfWeek(state.anchor);
      return { start: start, end: addDays(start, 7) };
    }
    return { start: state.anchor, end: addDays(state.anchor, 1) };
  }

  // --- the calendar ---------------------------------------------------------------------

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function percent(value) { return (value * 100).toFixed(3) + "%"; }

  function track(dayStart, intervals, slug, labelId) {
    const dayEnd = addDays(dayStart, 1);
    const span = dayEnd - dayStart;
    const bar = el("div", { class: "cal-track", role: "group", "aria-labelledby": labelId });
    for (let hour = 3; hour < 24; hour += 3) {
      const at = new Date(dayStart.getFullYear(), dayStart.getMonth(), dayStart.getDate(), hour);
      const tick = el("span", { class: "cal-tick", "aria-hidden": "true" });
      tick.style.left = percent((at - dayStart) / span);
      bar.appendChild(tick);
    }
    const now = new Date();
    if (now >= dayStart && now < dayEnd) {
      const line = el("span", { class: "cal-now", "aria-hidden": "true" });
      line.style.left = percent((now - dayStart) / span);
      bar.appendChild(line);
    }
    let shown = 0;
    intervals.forEach(function (interval) {
      const start = new Date(Math.max(new Date(interval.start), dayStart));
      const end = new Date(Math.min(new Date(interval.end), dayEnd));
      if (end <= start) return;
      shown += 1;
      const endText = end.getTime() === dayEnd.getTime() ? "24:00" : Lab.format(end, "time");
      const words = Lab.format(start, "time") + " to " + endText;
      const what = slug ? titles[slug] : "any experiment";
      const button = el("button", {
        type: "button",
        class: "cal-free",
        "data-start": start.toISOString(),
        "data-end": end.toISOString(),
        "data-experiment": slug,
        "aria-label": "Free " + words + ", " + what + ". Use this start.",
        title: "Free " + words,
      });
      button.style.left = percent((start - dayStart) / span);
      button.style.width = percent((end - start) / span);
      const label = el("span", { class: "cal-free-text", "aria-hidden": "true" },
        Lab.format(start, "time") + "–" + endText);
      button.appendChild(label);
      if ((end - start) / span < 0.14) button.classList.add("narrow");
      bar.appendChild(button);
    });
    if (!shown) bar.appendChild(el("span", { class: "cal-none" }, "No free time"));
    return bar;
  }

  function scale(dayStart) {
    const row = el("div", { class: "cal-row cal-scale-row", "aria-hidden": "true" });
    row.appendChild(el("div", { class: "cal-label" }));
    const bar = el("div", { class: "cal-scale" });
    const span = addDays(dayStart, 1) - dayStart;
    for (let hour = 0; hour < 24; hour += 3) {
      const at = new Date(dayStart.getFullYear(), dayStart.getMonth(), dayStart.getDate(), hour);
      const mark = el("span", {}, pad(at.getHours()));
      mark.style.left = percent((at - dayStart) / span);
      bar.appendChild(mark);
    }
    row.appendChild(bar);
    return row;
  }

  function row(labelText, bar, labelId, extraClass) {
    const line = el("div", { class: "cal-row" + (extraClass ? " " + extraClass : "") });
    line.appendChild(el("div", { class: "cal-label", id: labelId }, labelText));
    line.appendChild(bar);
    return line;
  }

  function renderDay(data, start) {
    grid.replaceChildren(scale(start));
    grid.appendChild(row("Any experiment", track(start, data.any, "", "cal-l-any"),
      "cal-l-any", "cal-any"));
    config.experiments.forEach(function (experiment, index) {
      const id = "cal-l-" + index;
      const label = experiment.available ? experiment.title : experiment.title + " (not available)";
      grid.appendChild(row(label, track(start, data.experiments[experiment.slug] || [],
        experiment.slug, id), id));
    });
  }

  function renderWeek(data, start) {
    const free = state.filter ? data.experiments[state.filter] || [] : data.any;
    grid.replaceChildren(scale(start));
    for (let i = 0; i < 7; i += 1) {
      const day = addDays(start, i);
      const id = "cal-d-" + i;
      const today = Lab.sameDay(day, new Date());
      grid.appendChild(row(Lab.format(day, "day") + (today ? " (today)" : ""),
        track(day, free, state.filter, id), id, today ? "cal-today" : ""));
    }
  }

  function rangeText(r) {
    if (state.view === "day") return Lab.format(r.start, "date");
    return Lab.format(r.start, "day") + " – " + Lab.format(addDays(r.end, -1), "day");
  }

  async function load() {
    const r = range();
    const ticket = ++state.request;
    rangeTitle.textContent = rangeText(r);
    calStatus.textContent = "Loading free times…";
    const url = config.availabilityUrl + "?from=" + encodeURIComponent(Lab.isoWithOffset(r.start)) +
      "&to=" + encodeURIComponent(Lab.isoWithOffset(r.end));
    const result = await Lab.api("GET", url);
    if (ticket !== state.request) return; // a newer view was asked for meanwhile
    if (!result.ok) {
      grid.replaceChildren();
      calStatus.textContent = Lab.errorText(result);
      return;
    }
    if (state.view === "day") renderDay(result.data, r.start);
    else renderWeek(result.data, r.start);
    calStatus.textContent = "";
  }

  function setView(view) {
    state.view = view;
    document.querySelectorAll("[data-view]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.view === view));
    });
    document.querySelectorAll(".move-label").forEach(function (label, i) {
      label.textContent = (i === 0 ? "Previous " : "Next ") + view;
    });
    showField.hidden = view !== "week";
    load();
  }

  function move(step) {
    if (step === 0) state.anchor = startOfDay(new Date());
    else state.anchor = addDays(state.anchor, step * (state.view === "week" ? 7 : 1));
    load();
  }

  // --- the booking form -----------------------------------------------------------------

  function setStart(date) {
    dateInput.value = dateValue(date);
    timeInput.value = timeValue(date);
  }

  function choose(button) {
    const now = new Date();
    const free = new Date(button.dataset.start);
    const start = free <= now ? floorMinute(now) : ceilMinute(free);
    setStart(start);
    experimentSelect.value = button.dataset.experiment || "";
    const room = Math.floor((new Date(button.dataset.end) - start) / 60000);
    const current = parseInt(lengthInput.value, 10) || config.defaultMinutes;
    lengthInput.value = Math.max(config.minMinutes, Math.min(current, room, config.maxMinutes));
    const what = button.dataset.experiment ? titles[button.dataset.experiment] : "any free experiment";
    calStatus.textContent = "Start set to " + Lab.format(start, "datetime") + " on " + what +
      ". Choose the length and book.";
    lengthInput.focus();
  }

  function readForm() {
    const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dateInput.value);
    const time = /^(\d{2}):(\d{2})/.exec(timeInput.value);
    if (!date || !time) return { error: "Choose a date and a start time." };
    const minutes = Number(lengthInput.value);
    if (!lengthInput.value || !Number.isInteger(minutes) || minutes <= 0) {
      return { error: "Give the length as a whole number of minutes." };
    }
    const start = new Date(Number(date[1]), Number(date[2]) - 1, Number(date[3]),
      Number(time[1]), Number(time[2]));
    const end = new Date(start.getTime() + minutes * 60000);
    const body = { pool: config.pool, start: Lab.isoWithOffset(start), end: Lab.isoWithOffset(end) };
    if (experimentSelect.value) body.experiment = experimentSelect.value;
    return { body: body };
  }

  function bookedText(booking) {
    const start = new Date(booking.start);
    const end = new Date(booking.end);
    const endText = Lab.sameDay(start, end) ? Lab.format(end, "time") : Lab.format(end, "datetime");
    return "Booked " + (titles[booking.experiment] || booking.experiment) + ", " +
      Lab.format(start, "datetime") + " – " + endText + ". Reference " + booking.reference + ".";
  }

  async function submit(event) {
    event.preventDefault();
    Lab.showBox(errorBox, "");
    resultBox.hidden = true;
    const parsed = readForm();
    if (parsed.error) {
      Lab.showBox(errorBox, parsed.error);
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    button.textContent = "Booking…";
    const result = await Lab.api("POST", config.bookingsApi, { body: parsed.body });
    button.disabled = false;
    button.textContent = "Book";
    if (!result.ok) {
      Lab.showBox(errorBox, Lab.errorText(result));
      if (result.data && result.data.code === "slot_taken") load(); // show what was taken
      return;
    }
    resultBox.replaceChildren(document.createTextNode(bookedText(result.data) + " "));
    const link = el("a", { href: config.myBookingsUrl }, "See my bookings");
    resultBox.appendChild(link);
    resultBox.hidden = false;
    load();
  }

  // --- wiring ---------------------------------------------------------------------------

  document.querySelectorAll("[data-view]").forEach(function (button) {
    button.addEventListener("click", function () { setView(button.dataset.view); });
  });
  document.querySelectorAll("[data-move]").forEach(function (button) {
    button.addEventListener("click", function () { move(Number(button.dataset.move)); });
  });
  showSelect.addEventListener("change", function () {
    state.filter = showSelect.value;
    load();
  });
  grid.addEventListener("click", function (event) {
    const button = event.target.closest(".cal-free");
    if (button) choose(button);
  });
  document.getElementById("b-now").addEventListener("click", function () {
    setStart(floorMinute(new Date()));
  });
  form.addEventListener("submit", submit);

  setStart(ceilMinute(new Date(Math.ceil(Date.now() / 300000) * 300000)));
  setView("day");
})();
