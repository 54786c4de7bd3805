// Sortable tables for the facebench leaderboard: click a column header to sort by it, click again to reverse.
// A cell sorts by its data-sort attribute when it has one (the raw number behind a formatted
// "3.71 [3.52, 3.96]"), otherwise by its text; numbers compare as numbers, text in natural order
// ("run-2" before "run-10").
// Empty keys (a missing value, "—") always go last. Rows are moved, never rebuilt: no innerHTML, so nothing
// from the data is ever parsed as HTML.
(function () {
  "use strict";

  function sortKey(cell) {
    const raw = (cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent).trim();
    if (raw === "" || raw === "—") return { missing: true };
    const number = Number(raw);
    return Number.isFinite(number) ? { number: number } : { text: raw };
  }

  function compareKeys(a, b) {
    if ("number" in a && "number" in b) return a.number - b.number;
    if ("number" in a) return -1;  // numbers before text
    if ("number" in b) return 1;
    return a.text.localeCompare(b.text, undefined, { numeric: true, sensitivity: "base" });
  }

  function sortTable(table, column, header) {
    const body = table.tBodies[0];
    const descending = header.getAttribute("aria-sort") === "ascending";
    const sign = descending ? -1 : 1;
    const keyed = Array.from(body.rows, function (row) {
      return { row: row, key: sortKey(row.cells[column]) };
    });
    keyed.sort(function (x, y) {
      if (x.key.missing || y.key.missing) return (x.key.missing ? 1 : 0) - (y.key.missing ? 1 : 0);
      return sign * compareKeys(x.key, y.key);
    });
    for (const other of table.tHead.rows[0].cells) other.removeAttribute("aria-sort");
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    for (const item of keyed) body.appendChild(item.row);
  }

  for (const table of document.querySelectorAll("table.sortable")) {
    Array.from(table.tHead.rows[0].cells).forEach(function (header, column) {
      const button = header.querySelector("button");
      if (button) button.addEventListener("click", function () { sortTable(table, column, header); });
    });
  }
})();
