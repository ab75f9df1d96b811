// Progressive enhancement only: every form works without this file (the server asks for
// confirmation on a page of its own). With it, a confirm() dialog replaces that page.
(function () {
  "use strict";

  function describe(form, submitter) {
    if (submitter && submitter.dataset.confirm) return submitter.dataset.confirm;
    var select = form.querySelector("select[name=action]");
    if (!select) return null;
    var kind = form.dataset.bulk || "item";
    var count = form.querySelectorAll("input[name=" + kind + "_id]:checked").length;
    var label = select.options[select.selectedIndex].text;
    return label + ": " + count + " " + kind + (count === 1 ? "" : "s") + ". Continue?";
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var confirmed = form.querySelector("input[name=confirmed]");
    if (!confirmed || confirmed.value === "1") return;
    var text = describe(form, event.submitter);
    if (!text) return;
    if (window.confirm(text)) {
      confirmed.value = "1";
    } else {
      event.preventDefault();
    }
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
})();
