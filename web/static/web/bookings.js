// My bookings: start, extend and cancel through the API; Start appears when a booking begins.
"use strict";

(function () {
  const SESSION_KEY = "lab.session";
  const REVEAL_WITHIN_MS = 86400000;
  const errorBox = document.getElementById("bookings-error");

  function card(button) { return button.closest("[data-booking]"); }

  function busy(button, on) {
    button.disabled = on;
    button.setAttribute("aria-busy", String(on));
  }

  async function start(button) {
    const item = card(button);
    const result = await Lab.api("POST", "/api/v1/bookings/" + item.dataset.booking + "/session/");
    if (!result.ok) return fail(result);
    const meta = {
      code: result.data.session,
      experiment: button.dataset.experiment,
      pool: button.dataset.pool,
      reference: button.dataset.reference,
      extendStep: Number(button.dataset.extendStep),
    };
    try {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(meta));
    } catch (error) { /* the fragment below carries the code anyway */ }
    // The code travels in the fragment, which is never sent to a server.
    window.location.assign("/session/#" + result.data.session);
    return true;
  }

  async function extend(button) {
    const item = card(button);
    const result = await Lab.api("POST", "/api/v1/bookings/" + item.dataset.booking + "/extend/",
      { body: {} });
    if (!result.ok) return fail(result);
    Lab.flashAfterReload("Booking " + result.data.reference + " now ends at " +
      Lab.format(new Date(result.data.end), "time") + ".");
    window.location.reload();
    return true;
  }

  async function cancel(button) {
    const reference = button.dataset.reference;
    if (!window.confirm("Cancel booking " + reference + "? A running session ends at once.")) {
      return false;
    }
    const item = card(button);
    const result = await Lab.api("POST", "/api/v1/bookings/" + item.dataset.booking + "/cancel/");
    if (!result.ok) return fail(result);
    Lab.flashAfterReload("Booking " + reference + " is cancelled.");
    window.location.reload();
    return true;
  }

  function fail(result) {
    Lab.showBox(errorBox, Lab.errorText(result));
    errorBox.scrollIntoView({ block: "nearest" });
    return false;
  }

  const actions = { start: start, extend: extend, cancel: cancel };

  document.addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    Lab.showBox(errorBox, "");
    busy(button, true);
    const done = await actions[button.dataset.action](button);
    if (!done) busy(button, false);
  });

  // Upcoming bookings: show Start (and Extend) at their start, by this browser's clock.
  document.querySelectorAll("button[data-action][hidden][data-start]").forEach(function (button) {
    const wait = new Date(button.dataset.start) - Date.now();
    if (isNaN(wait) || wait > REVEAL_WITHIN_MS) return;
    window.setTimeout(function () {
      button.hidden = false;
      const note = card(button).querySelector(".start-note");
      if (note) note.hidden = true;
    }, Math.max(0, wait));
  });
})();
