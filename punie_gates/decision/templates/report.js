// Filters the query rows by their data attributes; the page works without it.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.query-row"));
  var sections = Array.prototype.slice.call(document.querySelectorAll(".query-section"));
  var pick = function (id) { var el = document.getElementById(id); return el ? el.value : ""; };
  function apply() {
    var category = pick("filter-category"), outcome = pick("filter-outcome"), gate = pick("filter-gate");
    var shown = 0;
    rows.forEach(function (row) {
      var d = row.dataset;
      var ok = (!category || d.category === category) && (!gate || d.gate === gate) &&
        (!outcome || (outcome === "disagree" ? d.disagree === "1" : d.outcome === outcome));
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    sections.forEach(function (s) { s.hidden = !s.querySelector("tr.query-row:not([hidden])"); });
    var count = document.getElementById("filter-count");
    if (count) { count.textContent = shown + " of " + rows.length + " queries shown"; }
  }
  ["filter-category", "filter-outcome", "filter-gate"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el) { el.addEventListener("change", apply); }
  });
  apply();
})();
