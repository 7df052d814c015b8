// The little the pages do in the browser besides htmx: close dialogs and notices.
(function () {
  "use strict";
  function closeModal() {
    var modal = document.getElementById("modal");
    if (modal) { modal.innerHTML = ""; }
  }
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    if (target.closest("[data-close-modal]")) { closeModal(); }
    var dismiss = target.closest("[data-dismiss]");
    if (dismiss) { dismiss.closest(".flash").remove(); }
    if (target.classList.contains("modal-backdrop")) { closeModal(); }
    var remove = target.closest("[data-remove]");
    if (remove) {
      var part = remove.closest(remove.getAttribute("data-remove"));
      if (part) { part.remove(); }
      document.body.dispatchEvent(new Event("builder-changed"));
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closeModal(); }
  });
  document.addEventListener("htmx:beforeRequest", function (event) {
    // a new action (a button or a form, not a live count or a poll) replaces the last message
    var elt = event.detail.elt;
    if (elt instanceof Element && elt.matches("button, form")) {
      var flash = document.getElementById("flash");
      if (flash) { flash.innerHTML = ""; }
    }
  });
  document.addEventListener("htmx:afterSwap", function () {
    var field = document.querySelector("#modal input:not([type=hidden]), #modal select");
    if (field && !document.querySelector("#modal :focus")) { field.focus(); }
  });
})();
