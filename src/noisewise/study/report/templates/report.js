/* Sorting the summary table by a clicked header, and a load check that counts the
   figures the browser decoded (data-images-loaded on <body>), warning when one failed. */
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-sort"), x = parseFloat(v);
    return v === "" ? null : (isNaN(x) ? v.toLowerCase() : x);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.querySelector("button").addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          if (x === null || y === null) return (x === null) - (y === null);  /* blanks last */
          if (typeof x !== typeof y) { x = String(x); y = String(y); }
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  window.addEventListener("load", function () {
    var images = document.images, ok = 0;
    for (var i = 0; i < images.length; i++) {
      if (images[i].complete && images[i].naturalWidth > 0) ok++;
    }
    document.body.setAttribute("data-images-loaded", ok);
    document.body.setAttribute("data-images-total", images.length);
    if (ok < images.length) {
      var w = document.getElementById("image-warning");
      w.textContent = (images.length - ok) + " of " + images.length + " figures failed to load.";
      w.hidden = false;
    }
  });
})();
