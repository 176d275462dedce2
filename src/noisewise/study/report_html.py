"""HTML of the study report (see :mod:`noisewise.study.report`) and the spec as TOML.

Plain string building with :func:`html.escape` on every value from the store:
arm and study names are user text. The page has two small inline scripts:
sorting the summary table by a clicked header, and a load check that counts
the figures the browser decoded (``data-images-loaded`` on ``<body>``) and
shows a warning when one failed.

Example:
    >>> import tomllib
    >>> from noisewise.study.report_html import spec_to_toml
    >>> spec = {"study": {"name": "demo", "seeds": 3},
    ...         "arms": [{"name": "g", "grid": {"noise[0].stddev": [0.1, 1.0]}}]}
    >>> tomllib.loads(spec_to_toml(spec)) == spec
    True
"""

import base64
import html
import json
import math
import re

from noisewise._files import generator_meta, safe_name

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


# -- TOML ---------------------------------------------------------------------
def _key(key):
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else
                                                 ("inf" if v > 0 else "-inf"))
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        items = [f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML: {v!r}")


def spec_to_toml(spec):
    """The spec dict as TOML that :func:`noisewise.study.load_spec` reads back.

    Top-level tables become ``[section]``, lists of tables ``[[section]]``,
    anything nested inline. Keys whose value is None are left out (TOML has no
    null; the store writes non-finite numbers as null).
    """
    lines = []
    # Read top-down like the spec files in examples/: [study] first, [[arms]] last,
    # ``name`` first in each table (the stored JSON has its keys sorted).
    order = {k: i for i, k in enumerate(("study", "data", "model", "train"))}
    spec = dict(sorted(spec.items(), key=lambda kv: (kv[0] == "arms", order.get(kv[0], 4))))

    def named_first(table):
        return dict(sorted(table.items(), key=lambda kv: kv[0] != "name"))

    for section, body in spec.items():
        if isinstance(body, dict):
            lines.append(f"[{_key(section)}]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in named_first(body).items()
                      if v is not None]
            lines.append("")
        elif isinstance(body, list) and body and all(isinstance(x, dict) for x in body):
            for item in body:
                lines.append(f"[[{_key(section)}]]")
                lines += [f"{_key(k)} = {_value(v)}" for k, v in named_first(item).items()
                          if v is not None]
                lines.append("")
        elif body is not None:
            lines.insert(0, f"{_key(section)} = {_value(body)}")
    return "\n".join(lines)


# -- formatting ---------------------------------------------------------------
def _finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _num(x, digits=4, sign=False):
    return (f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}") if _finite(x) else "&ndash;"


def _p(x):
    if not _finite(x):
        return "&ndash;"
    return "&lt;0.001" if x < 0.001 else f"{x:.2g}"


def _ci(low, high):
    return f"[{_num(low)}, {_num(high)}]" if _finite(low) else "&ndash;"


def _cell(text, sort=None, cls="num"):
    key = "" if sort is None or (isinstance(sort, float) and not _finite(sort)) else sort
    return f'<td class="{cls}" data-sort="{html.escape(str(key))}">{text}</td>'


_COLUMNS = (("arm", "arm"), ("n", "replicas (seeds) with a finished run"),
            ("mean", "mean of the final metric"), ("95% CI", "t-based 95% CI of the mean"),
            ("diff vs ref", "paired mean difference, arm minus reference"),
            ("diff 95% CI", "t-based 95% CI of the paired difference"),
            ("p t-test (Holm)", "paired t-test, Holm-adjusted across arms"),
            ("p Wilcoxon (Holm)", "Wilcoxon signed-rank test, Holm-adjusted across arms"),
            ("P(better)", "fraction of paired seeds on which the arm beats the reference, "
                          "ties counted half"),
            ("train-test gap", "mean of train minus validation metric at the last epoch"))
_LOST = ("lost", "runs left out of every statistic: diverged (the loss or a metric became NaN "
                 "or infinite) or failed")


def _table(arms, summary, comparison, reference, counts):
    """The summary table: a row per arm with finished runs, and one per arm whose
    every run diverged (no numbers); a ``lost`` column when any arm lost runs."""
    rows_of = [a for a in counts if a in summary or counts[a].all_diverged]
    rows_of += [a for a in arms if a not in rows_of]
    lost = any(counts[a].lost for a in rows_of if a in counts)
    columns = _COLUMNS + ((_LOST,) if lost else ())
    head = "".join(f'<th scope="col" title="{html.escape(t)}"><button type="button">'
                   f"{html.escape(c)}</button></th>" for c, t in columns)
    rows = []
    for arm in rows_of:
        k = counts.get(arm)
        if arm not in summary:  # every run diverged: say so, show no numbers
            cells = ([_cell(html.escape(arm), arm, "arm"), _cell("0", 0)]
                     + [_cell("&ndash;") for _ in range(len(_COLUMNS) - 2)]
                     + [_cell(f'<b class="lost">{html.escape(k.all_diverged_text())}</b>',
                              k.lost, "lost")])
            rows.append(f'<tr data-arm="{html.escape(arm)}" class="diverged">'
                        f'{"".join(cells)}</tr>')
            continue
        s, c = summary[arm], comparison.get(arm)
        cells = [_cell(html.escape(arm) + (' <span class="tag">reference</span>'
                                           if arm == reference else ""), arm, "arm"),
                 _cell(str(s.n), s.n), _cell(_num(s.mean), s.mean),
                 _cell(_ci(s.ci_low, s.ci_high), s.ci_low)]
        if c is None:
            cells += [_cell("reference", 0.0, "ref")] + [_cell("") for _ in range(4)]
        else:
            cells += [_cell(_num(c.mean_diff, sign=True), c.mean_diff),
                      _cell(_ci(c.ci_low, c.ci_high), c.ci_low),
                      _cell(_p(c.p_ttest_holm), c.p_ttest_holm),
                      _cell(_p(c.p_wilcoxon_holm), c.p_wilcoxon_holm),
                      _cell(_num(c.prob_better, 2), c.prob_better)]
        cells.append(_cell(_num(s.gap.mean, sign=True), s.gap.mean))
        if lost:
            text = k.text() if k is not None else ""
            cells.append(_cell(f'<span class="lost">{html.escape(text)}</span>' if text else "",
                               k.lost if k is not None else 0, "lost"))
        rows.append(f'<tr data-arm="{html.escape(arm)}">{"".join(cells)}</tr>')
    return (f'<table class="sortable" id="summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _notes(arms, summary, comparison, reference):
    notes = {}
    for arm in arms:
        c = comparison.get(arm)
        for note in (c.note if c else None, summary[arm].note):
            for part in (note or "").split("; "):
                if part:
                    notes.setdefault(part, []).append(arm)
    items = []
    for note, who in notes.items():
        if len(who) == len(arms):
            scope = "all arms"
        elif len(who) == len(arms) - 1 and reference not in who and len(who) > 2:
            scope = "every arm compared with the reference"
        else:
            scope = ", ".join(who)
        items.append(f"<li>{html.escape(note)} <span class=\"muted\">({html.escape(scope)})"
                     "</span></li>")
    return f'<ul class="notes">{"".join(items)}</ul>' if items else ""


def _figure_html(f):
    return (f'<figure id="fig-{f["id"]}"><img src="{f["uri"]}" alt="{html.escape(f["alt"])}">'
            f'<figcaption>{f["caption"]}</figcaption></figure>')


def _grid_text(g, reference_mean):
    if g.best is None:
        return f"<p>Grid {html.escape(g.parent)}: {html.escape(g.note or 'no best level')}.</p>"
    level = ", ".join(f"{k} = {v}" for k, v in g.params[g.best].items())
    ref = (f" The reference mean is {_num(reference_mean)}." if _finite(reference_mean) else "")
    note = f" ({html.escape(g.note)})" if g.note else ""
    return (f"<p>Grid <b>{html.escape(g.parent)}</b>: best level <b>{html.escape(level)}</b>"
            f", mean {_num(g.best_mean)} {_ci(g.ci_low, g.ci_high)}; it is the best level in "
            f"{g.p_best[g.best]:.0%} of {g.n_boot} bootstrap resamples of the seeds. The best "
            f"of {len(g.levels)} means is optimistic: confirm it with a fresh study.{ref}{note}"
            "</p>")


def _environment_html(env, store, info, spec):
    rows = []
    for combo, n in env["combos"]:
        parts = ", ".join(f"{html.escape(k)} {html.escape(str(v))}"
                          for k, v in combo.items() if k != "backend")
        rows.append(f"<tr><td>{html.escape(str(combo.get('backend')))}</td><td>{parts}</td>"
                    f"<td class=\"num\">{n}</td></tr>")
    seeds = ", ".join(f"{r}&rarr;{s}" for r, s in env["seeds"])
    study = spec.get("study", {})
    wall = (f"{env['wall_s']:.1f} s over {env['n_wall']} runs "
            f"({env['wall_s'] / env['n_wall']:.2f} s per run)" if env["n_wall"] else "&ndash;")
    return f"""
<table class="kv">
<tr><th>store</th><td><code>{html.escape(store)}</code></td></tr>
<tr><th>study</th><td><code>{html.escape(info['name'])}</code>, created {html.escape(
        str(info['created_at']))}</td></tr>
<tr><th>spec hash</th><td><code>{html.escape(str(info['spec_hash']))}</code></td></tr>
<tr><th>study seed</th><td>{html.escape(str(study.get('seed', info.get('study_seed'))))}
 (replica <i>i</i> of every arm uses the same seed, so arms are compared on paired seeds)</td></tr>
<tr><th>replica &rarr; seed</th><td class="seeds">{seeds or '&ndash;'}</td></tr>
<tr><th>runs</th><td>{html.escape(str(env['first'] or '&ndash;'))} to {html.escape(
        str(env['last'] or '&ndash;'))}; training time {wall}</td></tr>
</table>
<table class="env"><thead><tr><th>backend</th><th>versions</th><th>runs</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>"""


def _lost_warnings(counts, reference, stored_reference):
    """Warning lines: arms whose every run diverged, and how many runs each arm lost."""
    warnings = []
    for k in counts.values():
        if k.all_diverged:
            warnings.append(f"Arm <b>{html.escape(k.arm)}</b>: {html.escape(k.all_diverged_text())}"
                            ": it has no statistics and its results are not comparable.")
    diverged = [k for k in counts.values() if k.diverged and not k.all_diverged]
    if diverged:
        arms = ", ".join(f"<b>{html.escape(k.arm)}</b> {html.escape(k.text())}"
                         for k in diverged)
        n = sum(k.diverged for k in diverged)
        warnings.append(f"{n} run(s) diverged (the loss or a metric became NaN or infinite) "
                        f"and are left out of every statistic: {arms}. The paired "
                        "comparisons use only the seeds finished in both arms.")
    if stored_reference and reference != stored_reference and stored_reference in counts:
        warnings.append(f"The reference <b>{html.escape(stored_reference)}</b> has no finished "
                        f"runs: arms are compared with <b>{html.escape(str(reference))}</b> "
                        "instead.")
    return warnings


def page(*, info, spec, metric, arms_all, arms, summary, comparison, grids, reference,
         figures, failed, n_done, environment, store, higher_is_better, generated,
         counts=None, stored_reference=None):
    """The report page (one HTML string). Arguments as gathered by ``write_report``;
    ``counts`` is :func:`noisewise.study.stats.run_counts` of every run."""
    from noisewise import __version__

    counts = counts or {}
    name = html.escape(info["name"])
    seeds = spec.get("study", {}).get("seeds") or 0
    expected = len(arms_all) * seeds
    n_diverged = sum(k.diverged for k in counts.values())
    warnings = _lost_warnings(counts, reference, stored_reference)
    if not n_done:
        warnings.append("This study has no finished runs" + (
            "" if n_diverged else " yet") + ": there is nothing to summarise.")
    if arms and max(summary[a].n for a in arms) == 1:
        warnings.append(
            "Each arm has a single finished run (one seed), so there is no spread to measure: "
            "no confidence intervals, no bands and no tests are possible, and the differences "
            "below may be chance. Run the study with more seeds (e.g. <code>--seeds 5</code>) "
            "to compare arms.")
    if failed:
        warnings.append(f"{len(failed)} run(s) failed and are left out; their errors are in "
                        "the store and a rerun retries them.")
    if len(environment["combos"]) > 1:
        warnings.append("The runs were made with different backends or library versions "
                        "(see Reproduce): paired runs may differ for that reason too.")
    if n_done and n_done + n_diverged < expected:  # diverged runs are final, not pending
        warnings.append(f"Only {n_done} of {expected} runs have finished; the numbers will "
                        "change when the rest are run.")
    direction = "higher" if higher_is_better else "lower"
    toml_text = spec_to_toml(spec)
    download = base64.b64encode(toml_text.encode()).decode("ascii")
    file_name = safe_name(info["name"]) + ".toml"
    ref_mean = summary[reference].mean if reference in summary else math.nan
    sections = []
    tabled = bool(arms) or any(k.all_diverged for k in counts.values())
    if tabled:
        sections.append(
            f'<section id="summary-table"><h2>Summary</h2>'
            f"<p>Final <code>{html.escape(metric)}</code> ({direction} is better) per arm, and "
            f"the paired comparison with the reference <b>{html.escape(str(reference))}</b> on "
            "the seeds both finished. Click a column header to sort.</p>"
            f"{_table(arms, summary, comparison, reference, counts)}"
            f"{_notes(arms, summary, comparison, reference)}</section>")
    if figures["grids"]:
        sections.append('<section id="grids"><h2>Noise level</h2>' + "".join(
            _figure_html(f) + _grid_text(g, ref_mean)
            for f, g in zip(figures["grids"], grids.values())) + "</section>")
    titles = {"final": "Final metric per seed", "curves": "Learning curves",
              "loss": "Loss curves", "gap": "Train-test gap"}
    for f in figures["main"]:
        sections.append(f'<section id="{f["id"]}"><h2>{titles[f["id"]]}</h2>'
                        f"{_figure_html(f)}</section>")
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (
        [("summary-table", "Summary")] * tabled + [("grids", "Noise level")] * bool(grids)
        + [(f["id"], titles[f["id"]]) for f in figures["main"]] + [("reproduce", "Reproduce")]))
    store_arg = html.escape(store if " " not in store else json.dumps(store))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
{generator_meta()}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} &middot; noisewise study report</title>
<style>{_CSS}</style></head>
<body data-images-loaded="0">
<header><h1>Noise study <code>{name}</code></h1>
<p class="muted">{n_done} of {expected} runs finished ({len(arms)} of {len(arms_all)} arms,
{seeds} seed(s) each) &middot; metric <code>{html.escape(metric)}</code> ({direction} is better)
&middot; reference <b>{html.escape(str(reference))}</b> &middot; generated {generated} by noisewise
{html.escape(__version__)} from the store alone</p>
<nav>{nav}</nav></header>
<p id="image-warning" class="warning" hidden></p>
{''.join(f'<p class="warning">{w}</p>' for w in warnings)}
{''.join(sections)}
<section id="reproduce"><h2>Reproduce</h2>
<p>Save the spec below as <code>{html.escape(file_name)}</code> (or <a download="{html.escape(
        file_name)}" href="data:application/toml;base64,{download}">download it</a>) and run
<code>noisewise run {html.escape(file_name)} --store {store_arg}</code>: against this store it
resumes the study (nothing is retrained once every run is stored); against a new store it trains
every run again with the same seeds. Relative data or builder paths are resolved against the
spec file's folder.</p>
<pre class="spec">{html.escape(toml_text)}</pre>
<details><summary>The spec as JSON (as stored)</summary>
<pre class="spec">{html.escape(json.dumps(spec, indent=2, sort_keys=True))}</pre></details>
<h3>Environment</h3>{_environment_html(environment, store, info, spec)}
</section>
<script>{_JS}</script>
</body></html>
"""


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;
 max-width:1240px;margin:0 auto;padding:0 20px 40px;background:#fff}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{font-size:1.25em;margin:1.6em 0 .4em;
 border-bottom:1px solid #ddd;padding-bottom:.2em}h3{font-size:1.05em}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:.9em}
.muted{color:#555}nav a{margin-right:1em}
.warning{background:#fff4e0;border-left:4px solid #E69F00;padding:.5em .8em}
.lost{color:#a33}tr.diverged td{background:#fbeaea}
table{border-collapse:collapse;margin:.6em 0}
th,td{padding:.3em .6em;border-bottom:1px solid #e4e4e4}
td.num,td.ref{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.arm{text-align:left;white-space:nowrap}td.ref{color:#555;font-style:italic}
#summary thead th{position:sticky;top:0;background:#f3f3f3}
#summary tbody tr:nth-child(even){background:#fafafa}
th button{font:inherit;font-weight:600;background:none;border:0;cursor:pointer;padding:0}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
.tag{font-size:.75em;background:#e8f1f8;border:1px solid #0072B2;border-radius:3px;padding:0 .3em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#333;font-size:.92em;max-width:900px}
pre.spec{background:#f6f6f6;padding:.8em;overflow-x:auto;border:1px solid #e4e4e4}
table.kv th{text-align:left;vertical-align:top;white-space:nowrap}td.seeds{font-size:.85em}
@media print{body{max-width:none;font-size:11pt}nav,th button::after{display:none}
 figure,table,pre{break-inside:avoid}a{color:inherit;text-decoration:none}}
"""

_JS = """
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
"""
