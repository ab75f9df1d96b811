// Progressive enhancement only: every form works without this file (the server asks for
// confirmation on a page of its own). With it, the confirmation is a <dialog> in the page.
// No browser dialog calls (window's confirm, alert, prompt): the Airflow UI embeds these pages in an
// iframe sandboxed without allow-modals, where such calls return at once without asking.
(function () {
  "use strict";

  function describe(form, submitter) {
    if (submitter && submitter.dataset.confirm) return submitter.dataset.confirm;
    var select = form.querySelector("select[name=action]");
    if (!select) return null;
    var kind = form.dataset.bulk || "item";
    var count = form.querySelectorAll("input[name=" + kind + "_id]:checked").length;
    if (!count) return null;  // nothing selected: the server says so
    var label = select.options[select.selectedIndex].text;
    return label + ": " + count + " " + kind + (count === 1 ? "" : "s") + ". Continue?";
  }

  // Work that costs Soundcharts API calls (an add with history, a heal) names the REST API's estimate in
  // data-estimate (on its button, or on its action's option: the selected rows and the add's settings are
  // the query). The words are the server's (services.budget.describe); without an answer the dialog asks
  // without them, and the page the server answers with says them anyway.
  function estimateUrl(form, submitter) {
    if (submitter && submitter.dataset.estimate) return submitter.dataset.estimate;
    var select = form.querySelector("select[name=action]");
    var option = select && select.options[select.selectedIndex];
    if (!option || !option.dataset.estimate) return null;
    var params = new URLSearchParams();
    var kind = form.dataset.bulk || "item";
    form.querySelectorAll("input[name=" + kind + "_id]:checked").forEach(function (box) {
      if (box.dataset.slug) params.append("slugs", box.dataset.slug); else params.append("chart_ids", box.value);
    });
    if (option.value === "add") {
      var frequency = form.querySelector("select[name=frequency]");
      var chosen = frequency ? frequency.value : "";
      if (chosen) params.set("sync_frequency", chosen);
      var field = { custom: "custom_interval_hours", cron: "cron_expression" }[chosen];
      var input = field && form.querySelector("input[name=" + field + "]");
      if (input && input.value.trim()) params.set(field, input.value.trim());
      ["sync_historical_data", "sync_immediately"].forEach(function (name) {
        var box = form.querySelector("input[name=" + name + "]");
        if (box) params.set(name, box.checked ? "true" : "false");
      });
    }
    return option.dataset.estimate + "?" + params.toString();
  }

  function showEstimate(url) {
    var note = document.getElementById("confirm-dialog-note");
    if (!note) return;
    note.textContent = "";
    note.className = "small";
    if (!url || !window.fetch) return;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (found) {
        if (!found) return;
        note.textContent = "Soundcharts API quota: " + found.text + ".";
        if (found.warning) note.className = "small estimate-warning";
      })
      .catch(function () { /* no estimate: the dialog asks without it */ });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var confirmed = form.querySelector("input[name=confirmed]");
    var dialog = document.getElementById("confirm-dialog");
    if (!confirmed || confirmed.value === "1" || !dialog || !dialog.showModal) return;
    var text = describe(form, event.submitter);
    if (!text) return;
    event.preventDefault();
    var submitter = event.submitter;
    document.getElementById("confirm-dialog-text").textContent = text;
    showEstimate(estimateUrl(form, submitter));
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue !== "confirm") return;
      confirmed.value = "1";
      // the clicked button's name=value goes with the form, as a plain submit would send it
      if (submitter && form.requestSubmit) form.requestSubmit(submitter); else form.submit();
    };
    dialog.showModal();
  });

  // A page restored from the back/forward cache must ask again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("input[name=confirmed]").forEach(function (input) { input.value = ""; });
  });

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.dataset || !box.dataset.selectAll) return;
    var form = box.form || box.closest("form");
    form.querySelectorAll("input[name=" + box.dataset.selectAll + "]").forEach(function (other) {
      other.checked = box.checked;
    });
  });

  // Links into the Airflow UI (target=_top). The UI's iframe is sandboxed without
  // allow-top-navigation, so the browser refuses to navigate the top window; but it is the same
  // origin, so the link is handed to the UI's own router (history + popstate), as its links do.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[target=_top]");
    if (!link || window.top === window || event.defaultPrevented || event.button !== 0 ||
        event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    try {
      var top = window.top;
      top.history.pushState({}, "", link.href);
      top.dispatchEvent(new top.PopStateEvent("popstate", { state: {} }));
    } catch (err) {
      window.location.href = link.href;  // not the same origin after all: open it in the frame
    }
  });

  // A page that may fetch for itself (the song page's stale audience) does it with a POST.
  document.querySelectorAll("form[data-auto-submit]").forEach(function (form) {
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  });
})();
