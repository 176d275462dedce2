"""The HTML study report: made from the store alone, self-contained, and read in a real browser."""

import base64
import html
import io
import math
import os
import re
import subprocess
import sys
import tomllib
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from _browser import render
from _report_stores import synthetic_store, trained_store
from PIL import Image
from scipy import stats as st

from noisewise.cli import main
from noisewise.study import Store, StoreError, load_spec, stats
from noisewise.study.execute.types import RunResult
from noisewise.study.report import default_report_path, report_after_run, write_report
from noisewise.study.report import figures as plots
from noisewise.study.runner import StudyRun

ROOT = Path(__file__).resolve().parents[2]


class _Page(HTMLParser):
    """Summary-table rows ({arm: [data-sort of each cell]}), images and <pre> blocks."""

    def __init__(self, text):
        super().__init__()
        self.rows, self.images, self.pres, self.body = {}, [], [], {}
        self._row = self._pre = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-arm" in a:
            self._row = self.rows.setdefault(a["data-arm"], [])
        elif tag == "td" and self._row is not None:
            self._row.append(a.get("data-sort"))
        elif tag == "img":
            self.images.append(a)
        elif tag == "pre":
            self._pre = []
        elif tag == "body":
            self.body = a

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        elif tag == "pre" and self._pre is not None:
            self.pres.append("".join(self._pre))
            self._pre = None

    def handle_data(self, data):
        if self._pre is not None:
            self._pre.append(data)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Three stores (grid, no grid, one seed) and their reports: {kind: (store, spec, html)}."""
    folder = tmp_path_factory.mktemp("report")
    made = {}
    for kind, kwargs in {"grid": {"seeds": 3, "grid": True},
                         "plain": {"seeds": 4, "grid": False},
                         "single": {"seeds": 1, "grid": False}}.items():
        store, spec = synthetic_store(folder / f"{kind}.db", name=kind, **kwargs)
        made[kind] = (store, spec, write_report(store, kind, folder / f"{kind}.html"))
    return made


def runs_of(store, name):
    with Store(store) as s:
        return s.runs(s.study(name)["id"])


def test_report_is_one_self_contained_file(studies):
    for kind, (_, _, path) in studies.items():
        text = path.read_text()
        page = _Page(text)
        # Nothing to fetch: no external scripts, styles, fonts or images.
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text), kind
        assert "<link" not in text and "@import" not in text and "url(" not in text
        assert page.images, kind
        for img in page.images:
            head, _, data = img["src"].partition(",")
            assert head == "data:image/png;base64"
            image = Image.open(io.BytesIO(base64.b64decode(data)))
            assert image.width > 200 and image.height > 100
            assert img["alt"]


def test_styles_and_scripts_are_package_files_inlined_into_the_page(studies):
    templates = resources.files("noisewise.study.report") / "templates"
    text = studies["plain"][2].read_text()
    css, js = (templates / "report.css").read_text(), (templates / "report.js").read_text()
    assert f"<style>{css}</style>" in text and f"<script>{js}</script>" in text
    assert "th[aria-sort=ascending]" in css and "data-images-loaded" in js


def test_importing_the_report_does_not_load_the_figures():
    code = ("import sys, noisewise.study.report; "
            "print('noisewise.study.report.figures' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"  # our matplotlib code loads when a report is drawn


def test_table_has_one_row_per_arm_with_the_store_statistics(studies):
    store, spec, path = studies["grid"]
    page = _Page(path.read_text())
    runs = runs_of(store, "grid")
    summary = stats.summarize(runs, "val_accuracy")
    comparison = stats.compare(runs, "baseline", "val_accuracy")
    assert list(page.rows) == [a.name for a in spec.arms]
    for arm, cells in page.rows.items():
        s = summary[arm]
        assert cells[0] == arm
        assert int(cells[1]) == s.n == 3
        assert float(cells[2]) == s.mean  # data-sort holds the exact value (repr round-trips)
        assert float(cells[3]) == s.ci_low
        if arm == "baseline":
            continue
        c = comparison[arm]
        assert float(cells[4]) == c.mean_diff
        for cell, p in ((cells[6], c.p_ttest_holm), (cells[7], c.p_wilcoxon_holm)):
            assert cell == "" if p is None else float(cell) == p  # no test: no number
        assert float(cells[8]) == c.prob_better
        assert cells[9] == (getattr(c, "verdict", None) or "")
    assert float(page.rows["input"][10]) == summary["input"].gap.mean


def test_grid_section_marks_the_best_level(studies):
    store, _, path = studies["grid"]
    text = path.read_text()
    best = stats.grid_best(runs_of(store, "grid"), "val_accuracy")["hidden"]
    level = ", ".join(f"{k} = {v}" for k, v in best.params[best.best].items())
    assert 'id="grids"' in text and 'id="fig-grid-0"' in text
    assert f"best level <b>{html.escape(level)}</b>" in text
    assert f"{best.p_best[best.best]:.0%} of {best.n_boot} bootstrap resamples" in text
    for kind in ("plain", "single"):
        assert 'id="grids"' not in studies[kind][2].read_text()


def test_every_figure_is_present(studies):
    for kind, n_grids in (("grid", 1), ("plain", 0), ("single", 0)):
        text = studies[kind][2].read_text()
        for fig in ("forest", "final", "curves", "loss", "gap"):
            assert f'id="fig-{fig}"' in text, (kind, fig)
        assert len(_Page(text).images) == 5 + n_grids


def test_single_seed_report_says_plainly_that_there_is_no_interval(studies):
    _, _, path = studies["single"]
    text = path.read_text()
    page = _Page(text)
    assert "no confidence intervals, no bands and no tests are possible" in text
    assert "With one seed per arm there is no band and no interval." in text
    for cells in page.rows.values():
        assert cells[1] == "1" and cells[3] == ""  # n = 1 and no CI
    assert page.rows["input"][6] == ""  # no test


def test_spec_in_the_report_reruns_the_same_study(studies, tmp_path):
    for kind, (store, spec, path) in studies.items():
        toml_text = _Page(path.read_text()).pres[0]
        with Store(store) as s:
            info = s.study(kind)
        assert tomllib.loads(toml_text) == info["spec"]
        spec_file = tmp_path / f"{kind}.toml"
        spec_file.write_text(toml_text)
        # Same hash: `noisewise run` on it resumes this study instead of refusing it.
        assert load_spec(spec_file).spec_hash == info["spec_hash"] == spec.spec_hash


def test_environment_and_store_are_shown(studies):
    store, _, path = studies["grid"]
    text = path.read_text()
    assert html.escape(str(store.resolve())) in text
    assert "keras 3.15.1" in text and ">jax<" in text
    for replica in range(3):
        assert f"{replica}&rarr;{1000 + replica}" in text  # replica -> seed
    with Store(store) as s:
        assert s.study("grid")["spec_hash"] in text


def test_failed_runs_are_reported_not_summarised(tmp_path):
    store, spec = synthetic_store(tmp_path / "f.db", name="f", seeds=3, grid=False,
                                  skip={(1, 2)})
    with Store(store) as s:
        s.write_run(s.study("f")["id"], RunResult(spec.arms[1], 2, 9, "failed", {}, {}, 0.1,
                                                  "jax", {}, error="diverged"))
    text = write_report(store, "f", tmp_path / "f.html").read_text()
    assert "1 run(s) failed" in text
    assert [c[1] for c in _Page(text).rows.values()] == ["3", "2"]  # the failed run is in no statistic


def test_missing_store_is_refused_and_not_created(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        write_report(tmp_path / "none.db", "x", tmp_path / "x.html")
    assert not (tmp_path / "none.db").exists()


def test_unknown_study_is_refused(studies):
    store = studies["plain"][0]
    with pytest.raises(StoreError, match="no study 'nope'"):
        write_report(store, "nope", store.with_name("nope.html"))


def test_report_after_run_writes_next_to_the_store_and_prints_the_path(studies):
    store = studies["single"][0]
    outcome = StudyRun("single", str(store), 1, 2, 0, 2, 0, 1.0)
    out = io.StringIO()
    path = report_after_run(outcome, stream=out)
    assert path == default_report_path(store, "single") == store.with_name("single-single.html")
    assert path.is_file() and out.getvalue() == f"report: {path}\n"
    # A name that had to change carries a hash of the exact name: never shared.
    quick = default_report_path("a/s.db", "circles:seeds=2,epochs=50").name
    assert re.fullmatch(r"s-circles_seeds_2_epochs_50-[0-9a-f]{8}\.html", quick)
    assert default_report_path("a/s.db", "circles_seeds=2,epochs=50").name != quick


def test_cli_subcommand(studies, tmp_path, capsys):
    out = tmp_path / "r.html"
    code = main(["report", "--store", str(studies["single"][0]), "-o", str(out)])
    assert code == 0  # no study named: the latest study of the store
    assert capsys.readouterr().out.strip() == str(out)
    assert "Noise study <code>single</code>" in out.read_text()


def test_report_is_made_from_the_store_in_a_fresh_process(studies, tmp_path):
    store = studies["plain"][0]
    out = tmp_path / "fresh.html"
    argv = ["-m", "noisewise.cli", "report", "plain", "--store", str(store), "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, *argv], check=False, capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith(str(out))
    page = _Page(out.read_text())
    assert page.rows == _Page(studies["plain"][2].read_text()).rows
    assert len(page.images) == 5


def test_band_is_the_t_interval_and_thin_keeps_the_ends():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(5, 7))
    m[0, 3] = np.nan
    _, low, high, n = plots.band(m)
    col = m[1:, 3]  # 4 finite values
    half = st.t.ppf(0.975, 3) * col.std(ddof=1) / 2
    assert n[3] == 4 and math.isclose(low[3], col.mean() - half)
    half0 = st.t.ppf(0.975, 4) * m[:, 0].std(ddof=1) / math.sqrt(5)
    assert math.isclose(high[0], m[:, 0].mean() + half0)
    assert np.isnan(plots.band(m[:1])[1]).all()  # one run: no band
    keep = plots.thin(4000)
    assert keep[0] == 0 and keep[-1] == 3999 and len(keep) <= plots.MAX_POINTS
    assert (np.diff(keep) > 0).all()
    assert list(plots.thin(10)) == list(range(10))


def test_long_curves_are_drawn_thinned():
    epochs = np.arange(1, 4001)
    m = np.random.default_rng(1).normal(size=(30, 4000))
    fig = plots.curves_figure(["a", "b"], {"a": {"train": (epochs, m), "val": (epochs, m)},
                                           "b": {"train": (epochs, m)}}, "accuracy", "a")
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 4  # a: train, val; b: train, reference val
    assert all(len(line.get_xdata()) <= plots.MAX_POINTS for line in lines)
    assert all(line.get_xdata()[-1] == 4000 for line in lines)


def test_level_axis_is_log_when_levels_span_decades():
    assert plots.level_axis([0.001, 0.01, 0.1, 1.0, 3.0]) == "log"
    assert plots.level_axis([0.1, 0.2, 0.3]) == "linear"
    assert plots.level_axis([0.0, 0.01, 0.1, 1.0]) == "symlog"
    assert plots.level_axis([-1.0, 1.0, 100.0]) == "linear"


def _check_rendered(dom, html_path, screenshot):
    page = _Page(dom)
    n_images = len(_Page(html_path.read_text()).images)
    # Set by the report's own load script: images the browser decoded with a real size.
    assert page.body.get("data-images-total") == str(n_images)
    assert page.body.get("data-images-loaded") == str(n_images)
    assert 'id="image-warning" class="warning" hidden' in dom
    image = np.asarray(Image.open(screenshot).convert("L"))
    assert image.shape == (2000, 1280)
    assert image.std() > 20  # not a blank page
    return page


@pytest.mark.parametrize("kind", ["grid", "plain", "single"])
def test_report_renders_in_chromium(studies, kind, tmp_path):
    _, spec, path = studies[kind]
    shot = tmp_path / f"{kind}.png"
    dom = render(path, shot)
    page = _check_rendered(dom, path, shot)
    assert list(page.rows) == [a.name for a in spec.arms]
    assert '<figure id="fig-forest"><img' in dom  # the verdict's forest plot, decoded above


def test_table_sorts_on_header_click_in_chromium(studies, tmp_path):
    store, _, path = studies["grid"]
    probe = ("<script>window.addEventListener('load', function () {"
             "var b = document.querySelectorAll('#summary th button')[2]; b.click();"
             "var order = Array.prototype.map.call(document.querySelectorAll("
             "'#summary tbody tr'), function (r) { return r.dataset.arm; });"
             "document.body.dataset.asc = order.join('|'); b.click();"
             "document.body.dataset.desc = Array.prototype.map.call(document.querySelectorAll("
             "'#summary tbody tr'), function (r) { return r.dataset.arm; }).join('|');});"
             "</script></body>")
    clicked = tmp_path / "clicked.html"
    clicked.write_text(path.read_text().replace("</body>", probe))
    body = _Page(render(clicked)).body
    summary = stats.summarize(runs_of(store, "grid"), "val_accuracy")
    by_mean = sorted(summary, key=lambda a: summary[a].mean)
    assert body["data-asc"].split("|") == by_mean
    assert body["data-desc"].split("|") == by_mean[::-1]


@pytest.mark.slow
def test_trained_studies_report_from_a_fresh_process_and_render(tmp_path):
    """End to end: real training, the CLI/Python report in a new process, Chromium."""
    for name, kwargs in (("trained", {"seeds": 2, "grid": True}),
                         ("trained1", {"seeds": 1, "grid": False})):
        store, spec = trained_store(tmp_path / f"{name}.db", name=name, **kwargs)
        out = tmp_path / f"{name}.html"
        code = ("import sys; from noisewise.study.report import write_report; "
                "write_report(sys.argv[1], sys.argv[2], sys.argv[3])")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        done = subprocess.run([sys.executable, "-c", code, str(store), name, str(out)],
                              check=False, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        shot = tmp_path / f"{name}.png"
        page = _check_rendered(render(out, shot), out, shot)
        assert list(page.rows) == [a.name for a in spec.arms]
        with Store(store) as s:
            runs = s.runs(s.study(name)["id"])
        mean = stats.summarize(runs)["baseline"].mean
        assert float(page.rows["baseline"][2]) == mean


def test_report_replaces_only_its_own_pages(studies, tmp_path):
    from noisewise._core.files import OutputRefused

    store, _, made = studies["single"]
    assert '<meta name="generator" content="noisewise ' in made.read_text()[:1000]
    out = tmp_path / "mine.html"
    first = write_report(store, "single", out).stat().st_ino
    assert write_report(store, "single", out).stat().st_ino != first  # its own: replaced
    out.write_text("<html>someone's page</html>")
    with pytest.raises(OutputRefused, match="not written by noisewise.*--force"):
        write_report(store, "single", out)
    assert out.read_text() == "<html>someone's page</html>"
    assert "Noise study" in write_report(store, "single", out, force=True).read_text()
    for target, protect in ((store, ()), (tmp_path / "spec.txt", [tmp_path / "spec.txt"])):
        target.touch()
        before = target.read_bytes()
        with pytest.raises(OutputRefused, match="even with --force"):
            write_report(store, "single", target, force=True, protect=protect)
        assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.html", "spec.txt"]


def test_report_after_run_leaves_a_foreign_file_and_says_where_to_write(studies, tmp_path):
    store = tmp_path / "s.db"
    store.write_bytes(studies["single"][0].read_bytes())
    foreign = default_report_path(store, "single")
    foreign.write_text("not a report")
    out = io.StringIO()
    assert report_after_run(StudyRun("single", str(store), 1, 2, 0, 2, 0, 1.0), stream=out) is None
    assert foreign.read_text() == "not a report"
    line = out.getvalue()
    assert line.count("\n") == 1 and "report not written" in line
    assert f'noisewise report "single" --store {store} -o FILE' in line


def test_long_and_unsafe_study_names_make_distinct_short_file_names():
    names = ["n" * 300, "n" * 299 + "m", "a/b", "a_b", "a b", "..", "-rf", "CON", "é"]
    paths = [default_report_path("x/s.db", n).name for n in names]
    assert len(set(paths)) == len(names)
    assert all(len(p) <= 90 and re.fullmatch(r"s-[A-Za-z0-9._-]+\.html", p) for p in paths)
    assert default_report_path("x/s.db", "a_b").name == "s-a_b.html"  # safe names kept as is
    with pytest.raises(ValueError, match="non-empty string"):
        default_report_path("x/s.db", "")


# -- user text on the page: escaped everywhere, shown literally ---------------------
class _Text(HTMLParser):
    """Start tags in order (name and attribute names), attributes, table rows as cell
    texts, and the text of the title, the h1 and each figcaption, as a reader sees them."""

    VOID = frozenset({"meta", "img", "br", "input", "link", "hr"})

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.rows, self.captions, self.all = [], [], [], [], []
        self.title = self.h1 = ""
        self._open = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(sorted(k for k, _ in attrs))))
        self.attrs.append(dict(attrs))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self.rows[-1].append("")
        elif tag == "figcaption":
            self.captions.append("")
        if tag not in self.VOID:
            self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag):]

    def handle_data(self, data):
        self.all.append(data)
        if "title" in self._open:
            self.title += data
        if "h1" in self._open:
            self.h1 += data
        if "figcaption" in self._open:
            self.captions[-1] += data
        if {"td", "th"} & set(self._open) and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data

    def row(self, header):
        return next(r for r in self.rows if r and r[0] == header)


STUDY = "S<b>tudy</b> & \"q\" 'a' &amp;"
ARMS = ("base<i>\"'", "in</td><script>document.title='x'</script>&", "g<img src=x onerror=y()>")
METRIC = "acc<script>alert(\"m\")</script>&'"


def test_a_study_without_start_times_shows_the_dash_not_the_entity_text(tmp_path):
    store = tmp_path / "empty.db"
    with Store(store) as s:  # a study whose runs have not started: no times at all
        s.open_study(load_spec({"study": {"name": "empty", "seeds": 2}, "data": {"name": "circles"},
                                "model": {"name": "mlp", "hidden": [4]},
                                "train": {"epochs": 2}, "arms": [{"name": "baseline"}]}))
    page = _Text(write_report(store, "empty", tmp_path / "empty.html").read_text())
    assert page.row("runs")[1] == "\u2013 to \u2013; training time \u2013"
    assert page.row("replica \u2192 seed")[1] == "\u2013"
    assert not any("&ndash;" in t or "&amp;" in t for t in page.all)  # no entity shown as text


def test_the_metric_name_is_escaped_in_every_caption(tmp_path):
    store, _ = synthetic_store(tmp_path / "m.db", name="m", seeds=2, metric=METRIC)
    text = write_report(store, "m", tmp_path / "m.html", metric=f"val_{METRIC}").read_text()
    page = _Text(text)
    assert [a["id"] for a in page.attrs if "id" in a and a["id"].startswith("fig-")] == [
        "fig-grid-0", "fig-forest", "fig-final", "fig-curves", "fig-loss", "fig-gap"]
    named = [c for c in page.captions if not c.startswith("Loss curves")]
    assert len(named) == 5 and all(METRIC in c for c in named), page.captions
    assert f"val_{METRIC}" in page.captions[3] and f"val_{METRIC}" in page.captions[5]
    assert METRIC not in text and "<script>alert" not in text  # never raw in the source
    assert [t for t, _ in page.tags].count("script") == 1  # the page's own script only


def _report(folder, name, arms, metric):
    store, spec = synthetic_store(folder / f"{len(name)}.db", name=name, seeds=2, arms=arms,
                                  metric=metric)
    out = write_report(store, name, folder / f"{len(name)}.html", metric=f"val_{metric}")
    return spec, out.read_text()


def test_user_text_full_of_markup_is_shown_literally_and_injects_nothing(tmp_path):
    _, plain = _report(tmp_path, "s", ("a", "b", "c"), "m")
    spec, hostile = _report(tmp_path, STUDY, ARMS, METRIC)
    plain, page = _Text(plain), _Text(hostile)
    # The same elements with the same attributes, in the same order: nothing injected.
    assert page.tags == plain.tags
    assert page.title == f"{STUDY} \u00b7 noisewise study report"
    assert page.h1 == f"Noise study {STUDY}"
    arms = [a.name for a in spec.arms]
    assert [a["data-arm"] for a in page.attrs if "data-arm" in a] == arms
    table = [r for r in page.rows if r and r[0].removesuffix(" reference") in arms]
    assert [r[0].removesuffix(" reference") for r in table] == arms
    assert page.row("study")[1].startswith(f"{STUDY}, created ")
    assert f"val_{METRIC}" in "".join(page.all)
    assert tomllib.loads(_Page(hostile).pres[0])["study"]["name"] == STUDY
    for raw in (*ARMS, STUDY, METRIC, "<script>document", "<img src=x"):
        assert raw not in hostile, raw


def test_dollar_signs_in_names_are_drawn_as_text_not_math():
    arm, metric = "a$_$", "val_m$\\frac$"  # mathtext would fail on both
    fig = plots.final_figure([arm], {arm: [0.5, 0.6]}, {}, metric)
    assert plots.to_data_uri(fig).startswith("data:image/png;base64,")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [arm]
    assert ax.get_xlabel() == f"final {metric}"
