"""The report page from jinja2 templates (``templates/``), autoescaped.

Study, arm and metric names are user text: every value reaches the page
through the templates' autoescaping, and only the page's own markup (the
templates, the CSS and JS files, the generator tag) is trusted. The CSS and
JS are package files inlined into the page, so the report is one file that
opens offline. The formatting filters return plain text, or the ``&ndash;``
entity as markup where a value is missing.
"""

import base64
import functools
import json
import math

import jinja2
from markupsafe import Markup

from noisewise import __version__
from noisewise._core.files import generator_meta, safe_name
from noisewise.study.report.spec_toml import spec_to_toml

DASH = Markup("&ndash;")
SECTION_TITLES = {"forest": "Verdict", "final": "Final metric per seed",
                  "curves": "Learning curves", "loss": "Loss curves", "gap": "Train-test gap",
                  "calibration": "Calibration"}
# Summary table columns: (header, what it holds, shown as the header's tooltip).
COLUMNS = (("arm", "arm"), ("n", "replicas (seeds) with a finished run"),
           ("mean", "mean of the final metric"), ("95% CI", "95% CI of the mean"),
           ("diff vs ref", "paired mean difference, arm minus reference"),
           ("diff 95% CI", "95% CI of the paired difference"),
           ("p t-test (Holm)", "paired t-test, Holm-adjusted across arms"),
           ("p Wilcoxon (Holm)", "Wilcoxon signed-rank test, Holm-adjusted across arms"),
           ("P(better)", ("fraction of paired seeds on which the arm beats the reference, "
                          "ties counted half")),
           ("verdict", "helps, hurts or no detectable difference, from the paired comparison"),
           ("train-test gap", "mean of train minus validation metric at the last epoch"))
# The key of each column's method in noisewise.study.stats.TESTS, which words the
# tooltip and the legend under the table when the statistics name it.
TEST_KEYS = {"n": "n", "mean": "mean", "95% CI": "ci", "diff vs ref": "mean_diff",
             "diff 95% CI": "diff_ci", "p t-test (Holm)": "p_ttest",
             "p Wilcoxon (Holm)": "p_wilcoxon", "P(better)": "prob_better", "verdict": "verdict"}


def table_columns(tests):
    """``(columns, legend)``: the (header, tooltip) pairs, tooltips from ``tests``
    (:data:`noisewise.study.stats.TESTS`) where it names the column's method, and
    the (header, method) pairs of those columns."""
    named = {h: str(tests[TEST_KEYS[h]]) for h, _ in COLUMNS
             if h in TEST_KEYS and tests.get(TEST_KEYS[h])}
    return tuple((h, named.get(h, tip)) for h, tip in COLUMNS), list(named.items())
LOST_COLUMN = ("lost", ("runs left out of every statistic: diverged (the loss or a metric "
                        "became NaN or infinite) or failed"))


def _finite(x):
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def num(x, digits=4, sign=False):
    """``x`` with ``digits`` decimals (and a sign), or a dash when missing or not finite."""
    return (f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}") if _finite(x) else DASH


def pvalue(x):
    return DASH if not _finite(x) else ("<0.001" if x < 0.001 else f"{x:.2g}")


def ci(low, high):
    return Markup("[{}, {}]").format(num(low), num(high)) if _finite(low) else DASH


def sort_key(x):
    """A cell's ``data-sort``: the exact value (repr round-trips), empty when missing."""
    return "" if x is None or (isinstance(x, float) and not _finite(x)) else x


def or_dash(x):
    return DASH if x is None or x == "" else x


def percent(x):
    return f"{x:.0%}" if _finite(x) else DASH


@functools.cache  # the parsed templates; they never change while the package is loaded
def environment():
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("noisewise.study.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.filters.update(num=num, p=pvalue, ci=ci, sort_key=sort_key, or_dash=or_dash,
                       pct=percent)
    env.tests["finite"] = _finite
    env.globals.update(dash=DASH, columns=COLUMNS, lost_column=LOST_COLUMN,
                       titles=SECTION_TITLES)
    return env


def asset(name):
    """A package file under ``templates/`` as trusted text (read, not parsed as a template)."""
    env = environment()
    return Markup(env.loader.get_source(env, name)[0])


def render(**context):
    """The page (one HTML string) from what :func:`noisewise.study.report.write_report`
    gathered; ``context`` holds the names ``templates/page.html`` uses."""
    spec, info, store = context["spec"], context["info"], context["store"]
    toml_text = spec_to_toml(spec)
    columns, legend = table_columns(context.get("tests") or {})
    return environment().get_template("page.html").render(
        **context, columns=columns, legend=legend, version=__version__, generator=Markup(generator_meta()),
        css=asset("report.css"), js=asset("report.js"), toml_text=toml_text,
        spec_json=json.dumps(spec, indent=2, sort_keys=True),
        download=base64.b64encode(toml_text.encode()).decode("ascii"),
        file_name=safe_name(info["name"]) + ".toml",
        study_seed=(spec.get("study") or {}).get("seed", info.get("study_seed")),
        store_arg=store if " " not in store else json.dumps(store))
