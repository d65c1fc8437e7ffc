// Local Telemetry dashboard: behaviour shared by every page (no inline scripts: CSP).
// Sortable tables: <table class="sortable"> whose <th> carry data-sort="text|number";
// number cells may carry data-value with the raw number. Headers are buttons, so the
// keyboard sorts too; aria-sort tells screen readers the order.
(function () {
  "use strict";

  function cellValue(row, index, kind) {
    var cell = row.cells[index];
    if (!cell) return kind === "number" ? -Infinity : "";
    var raw = cell.getAttribute("data-value");
    var text = raw !== null ? raw : cell.textContent.trim();
    if (kind === "number") {
      var number = parseFloat(text);
      return isNaN(number) ? -Infinity : number;
    }
    return text.toLowerCase();
  }

  function sortBy(table, header, index) {
    var kind = header.getAttribute("data-sort");
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th[aria-sort]").forEach(function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, kind), y = cellValue(b, index, kind);
      if (x < y) return ascending ? -1 : 1;
      if (x > y) return ascending ? 1 : -1;
      return 0;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function makeSortable(root) {
    root.querySelectorAll("table.sortable").forEach(function (table) {
      if (table.getAttribute("data-sortable-ready")) return;
      table.setAttribute("data-sortable-ready", "1");
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
        if (!header.hasAttribute("data-sort")) return;
        var button = document.createElement("button");
        button.type = "button";
        button.className = "sort";
        button.textContent = header.textContent;
        header.textContent = "";
        header.appendChild(button);
        button.addEventListener("click", function () { sortBy(table, header, index); });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { makeSortable(document); });
  document.addEventListener("htmx:afterSwap", function (event) { makeSortable(event.target); });
})();
