"""report.md (a CI job summary) and report.html (one self-contained page) from a report.

Every string that came from a run (reprs, messages, snippets, ids, environment) is escaped
on its way out: into HTML with ``html.escape``, into Markdown by escaping markup and fencing
code with a fence longer than any run of backticks inside it.  The HTML page loads nothing:
its style and script are inline and pinned by hash in a Content-Security-Policy, so even
markup that slipped through could not run script or fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html as htmllib
import re
from collections import defaultdict

from reports import schema

MAX_MD_FAILURES = 25
NO_DEVICE = "no device"  # the column of properties of shapes alone (broadcast_shapes)
MAX_MESSAGE = 6000
COLOURS = {  # outcome: (background, text)
    "passed": ("#d8f0d8", "#1c5c1c"), "failed": ("#f7c9c9", "#7a1010"),
    "crashed": ("#4a0d0d", "#ffffff"), "timed_out": ("#f2d29b", "#6b3d00"),
    "fixed": ("#cfe0f7", "#123f7a"), "known_deviation": ("#efe3a8", "#5a4a00"),
    "capability_gap": ("#e6dcf5", "#4b2a7a"), "not_applicable": ("#dde8ec", "#2d4a55"),
    "skipped": ("#e4e4e4", "#444444"),
}
SYMBOL = {"passed": "pass", "failed": "FAIL", "crashed": "CRASH", "timed_out": "TIMEOUT",
          "fixed": "fixed", "known_deviation": "deviation",
          "capability_gap": "gap", "not_applicable": "n/a", "skipped": "skip"}


# --------------------------------------------------------------------------- shared


PLURAL = {"known_deviation": "known deviations", "capability_gap": "capability gaps"}


def counted(doc: dict) -> list[tuple[str, str]]:
    """(outcome, "3 passed") for each outcome the run has, in report order."""
    counts = doc["counts"]
    return [(o, f"{counts[o]} {PLURAL.get(o, schema.WORDS[o]) if counts[o] > 1 else schema.WORDS[o]}")
            for o in schema.OUTCOMES if counts.get(o)]


def headline(doc: dict) -> str:
    return ", ".join(text for _, text in counted(doc)) or "no results yet"


def status(doc: dict) -> str:
    run, counts = doc["run"], doc["counts"]
    bad = sum(counts.get(o, 0) for o in schema.BROKEN) + counts.get("fixed", 0)
    state = "FAILED" if bad else "passed"
    if not run["complete"]:
        left = len(run["not_run"])
        state += (f" (INCOMPLETE: {left} planned tests have no result)" if run["finished"] or left
                  else " (in progress)")
    return state


def environment_line(doc: dict) -> str:
    env = doc["environment"]
    hyp = env["hypothesis"]
    suite = doc["suite"]
    commit = (suite.get("commit") or "unknown")[:12] + (" (modified)" if suite.get("dirty") else "")
    devices = ", ".join(d.get("description", d["name"]) + ("" if d["available"] else " (unavailable)")
                        for d in env["devices"])
    run = doc["run"]
    backend = run.get("backend") or "?"
    if run.get("backend_spec") and run["backend_spec"] != backend:
        backend += f" ({run['backend_spec']})"
    return (f"backend {backend} · torch {env['torch']['version']} · Python {env['python'].get('version', '?')} · "
            f"{env['platform'].get('system', '?')} {env['platform'].get('machine', '')} · "
            f"Hypothesis {env.get('packages', {}).get('hypothesis', '?')}, profile {hyp['profile']} "
            f"({hyp.get('max_examples', '?')} examples"
            f"{', derandomized' if hyp.get('derandomize') else ''}) · devices: {devices} · suite {commit}")


def matrix(doc: dict) -> tuple[list[str], list[tuple[str, str, dict]]]:
    """(devices, rows): one row per test id without its device, one column per device."""
    devices = sorted({r["device"] or NO_DEVICE for r in doc["results"]})
    rows: dict[tuple[str, str], dict] = defaultdict(dict)
    for r in doc["results"]:
        others = "-".join(v for k, v in r["params"].items() if k != "device")
        rows[(f"{r['module']}::{r['property']}", others)][r["device"] or NO_DEVICE] = r
    return devices, [(name, params, cells) for (name, params), cells in sorted(rows.items())]


def kernel_matrix(doc: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    """(kernels, rows) for the properties run once per SDPA kernel (a ``kernel`` parameter): a
    row per property and device, a cell per kernel with its outcome, the examples it ran and
    those the kernel refused (the reach tally's ``refused:REASON``, the kernel's own reason)."""
    kernels: list[str] = []
    rows: dict[str, dict] = defaultdict(dict)
    for r in doc["results"]:
        k = r["params"].get("kernel")
        if k is None:
            continue
        if k not in kernels:
            kernels.append(k)
        tallied = (r.get("reach") or {}).get("tallied", {})
        refused = {c.removeprefix("refused:"): n for c, n in tallied.items() if c.startswith("refused:")}
        rows[f"{r['property']} ({r['device'] or NO_DEVICE})"][k] = {
            "outcome": r["outcome"], "examples": r.get("examples"), "refused": refused, "id": r["id"]}
    from conformance.attention_apis import KERNEL_NAMES

    kernels.sort(key=lambda k: KERNEL_NAMES.index(k) if k in KERNEL_NAMES else len(KERNEL_NAMES))
    return kernels, sorted(rows.items())


def kernel_cell(c: dict | None) -> str:
    if c is None:
        return ""
    refused = sum(c["refused"].values())
    text = f"{SYMBOL[c['outcome']]} {c['examples'] if c['examples'] is not None else '-'}"
    if refused:
        text += f" ({refused} refused: " + "; ".join(f"{n}× {why}" for why, n in sorted(c["refused"].items())) + ")"
    return text


def gap_rows(doc: dict) -> list[dict]:
    """The capability gaps of a run, one per op × dtype × device: the kernel's refusal, the tests
    that met it, and how many of their examples it kept from being checked."""
    rows: dict[tuple, dict] = {}
    for r in doc["results"]:
        for g in r.get("gaps") or ():
            row = rows.setdefault((g["op"], g["dtype"], g["device"]), {**g, "examples": 0, "tests": []})
            row["examples"] += g["examples"]
            row["tests"].append(r["id"])
    return [rows[k] for k in sorted(rows)]


def _md_section(title: str, intro: str, columns: tuple[str, ...], rows) -> list[str]:
    """report.md lines of a section: a heading, one paragraph, and a table whose columns are
    named by `columns` (a name ending in ':' is a right-aligned number column)."""
    names = [c.removesuffix(":") for c in columns]
    align = ["---:" if c.endswith(":") else "---" for c in columns]
    return ["", f"## {title}", "", intro, "", "| " + " | ".join(names) + " |", "| " + " | ".join(align) + " |",
            *("|" + "|".join(f" {c} " if str(c) else " " for c in row) + "|" for row in rows)]


def not_applicable_rows(doc: dict) -> list[dict]:
    """What the run's devices could not show (conformance/semantics.py): whole tests reported
    not applicable, checks skipped inside tests that ran, and layout claims not receivable.
    One row per (device, what, why), with the tests and the examples that skipped it."""
    rows: dict[tuple, dict] = {}

    def add(device, what, why, test_id, examples):
        row = rows.setdefault((str(device), what, why), {"device": device, "what": what, "why": why,
                                                          "tests": [], "examples": 0})
        row["tests"].append(test_id)
        row["examples"] += examples

    for r in doc["results"]:
        if r["outcome"] == "not_applicable":
            what, _, why = (r.get("skip_reason") or "").partition("; ")
            add(r["device"], "the whole property: " + what.split(": ", 1)[-1], why, r["id"], 0)
        for c in r.get("not_applicable") or ():
            add(r["device"], c["check"], c["why"], r["id"], c["examples"])
        for nr in (r.get("reach") or {}).get("not_receivable") or ():
            add(r["device"], "claimed classes it cannot receive: " + ", ".join(sorted({c.split(".", 1)[-1].split(".")[-1]
                                                                                       for c in nr["claims"]})),
                nr["why"], r["id"], 0)
    return [rows[k] for k in sorted(rows)]


def expectation_rows(doc: dict) -> list[dict]:
    """The version-aware policies that applied to the run's torch (older reports have none)."""
    return list((doc.get("expectations") or {}).get("policies", []))


def failures(doc: dict) -> list[dict]:
    order = {o: i for i, o in enumerate(schema.OUTCOMES)}
    return sorted((r for r in doc["results"] if r["failure"] and r["outcome"] != "known_deviation"),
                  key=lambda r: (order[r["outcome"]], r["id"]))


def _clip(text: str | None, n: int = MAX_MESSAGE) -> str:
    text = text or ""
    return text if len(text) <= n else text[:n] + f"\n... ({len(text) - n} more characters in report.json)"


# --------------------------------------------------------------------------- markdown


def md(text) -> str:
    """Inline Markdown text: no markup, no HTML, no table breaks."""
    text = htmllib.escape(" ".join(str(text).split()), quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|~>])", r"\\\1", text)


def code(text) -> str:
    """An inline code span that nothing inside can end or break out of (tables included)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    bar = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{bar}{pad}{text}{pad}{bar}" if text else ""


def fence(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    bar = "`" * max(3, longest + 1)
    return f"{bar}{lang}\n{text}\n{bar}"


def considered_line(doc: dict) -> str:
    """Each device the run's probes were asked about, and the answer (empty for old reports)."""
    seen = doc["run"].get("devices_considered") or []
    return "devices considered: " + "; ".join(
        f"{d['name']}: " + ("used" if d.get("used") else "available, not selected" if d["available"]
                            else f"not available ({d.get('why') or 'no reason given'})") for d in seen) if seen else ""


def markdown(doc: dict) -> str:
    out = ["# Conformance report", "", md(environment_line(doc)), ""]
    if considered_line(doc):
        out += [md(considered_line(doc)), ""]
    out += [f"**Status: {md(status(doc))}**: {md(headline(doc))}", ""]
    out += ["| outcome | tests |", "| --- | ---: |"]
    out += [f"| {schema.WORDS[o]} | {doc['counts'][o]} |" for o in schema.OUTCOMES if doc["counts"].get(o)]
    devices, rows = matrix(doc)
    out += ["", "## Property × device", "", "| property | params | " + " | ".join(map(md, devices)) + " |",
            "| --- | --- |" + " :---: |" * len(devices)]
    for name, params, cells in rows:
        shown = [SYMBOL[cells[d]["outcome"]] if d in cells else "" for d in devices]
        shown = [f"**{s}**" if s.isupper() else s for s in shown]
        out.append(f"| {code(name)} | {code(params)} | " + " | ".join(shown) + " |")
    kernels, krows = kernel_matrix(doc)
    if krows:
        out += ["", "## SDPA kernel × property", "",
                "Outcome, examples run, and how many the pinned kernel refused, with its reason "
                "(`conformance/attention_apis.py`).", "",
                "| property | " + " | ".join(map(md, kernels)) + " |", "| --- |" + " --- |" * len(kernels)]
        out += [f"| {code(name)} | " + " | ".join(md(kernel_cell(cells.get(k))) for k in kernels) + " |"
                for name, cells in krows]
    if gaps := gap_rows(doc):
        out += _md_section("Capability gaps", "Op × dtype × device the backend refused as unimplemented and does "
                           "not declare (`conformance/capabilities.py`): those examples were not checked; the others "
                           "were.", ("op", "dtype", "device", "tests:", "examples:", "refusal"),
                           [(code(g["op"]), md(g["dtype"]), md(g["device"]), len(g["tests"]), g["examples"],
                             code(g["message"][:160])) for g in gaps])
    if compiled := sorted(((r["compiles"], r["id"], r.get("examples") or 0, r["time_s"]) for r in doc["results"]
                           if r.get("compiles") is not None), key=lambda t: (-t[0], t[1])):
        rest = [("... %d more tests" % (len(compiled) - 30), sum(c for c, *_ in compiled[30:]), "", "")
                ] if len(compiled) > 30 else []
        out += _md_section(f"Compiles ({sum(c for c, *_ in compiled):,} graphs)",
                           "Graphs the backend or device compiled per test (`conformance.backends.compiles`): what "
                           "a per-shape compiling backend pays for new shapes; the most first.",
                           ("test", "compiles:", "examples:", "time (s):"),
                           [(code(t), c, n, f"{s:.1f}") for c, t, n, s in compiled[:30]] + rest)
    if na := not_applicable_rows(doc):
        out += _md_section("Not applicable on this device", "Checks the device cannot make, counted apart and never "
                           "as passed (`conformance/semantics.py`); every value check of these tests ran.",
                           ("device", "check", "tests:", "examples that skipped it:", "why"),
                           [(md(n["device"]), md(n["what"]), len(n["tests"]), n["examples"] or "-", md(n["why"][:240]))
                            for n in na])
    failed = failures(doc)
    if failed:
        out += ["", f"## Failures ({len(failed)})"]
        for r in failed[:MAX_MD_FAILURES]:
            f = r["failure"]
            out += ["", f"### {code(r['id'])}: {md(schema.WORDS[r['outcome']])}", ""]
            if r.get("rule"):
                out.append(f"Property: {md(r['rule'])}")
            if f.get("rule"):
                out.append(f"Rule violated: {md(f['rule'])}")
            out += ["", fence(_clip(f.get("message"))), ""]
            if f.get("snippet"):
                out += ["Reproduce (torch and numpy only):", "", fence(f["snippet"], "python")]
        if len(failed) > MAX_MD_FAILURES:
            out += ["", f"... and {len(failed) - MAX_MD_FAILURES} more failures: see report.json"]
    reached = reach_rows(doc)
    if reached:
        out += ["", "## Reach: claimed input classes", "",
                "Examples per class each test claims (`conformance/reach/`; the fewest first). A claim "
                "is reached when max(3, 1 %) of the checked examples reach it.", "",
                "| test | claims reached | fewest examples | unreached |", "| --- | ---: | --- | --- |"]
        for test_id, n, total, fewest, missing in reached:
            out.append(f"| {code(test_id)} | {n}/{total} | {md(fewest)} | {md(', '.join(missing)) or '-'} |")
    entries = doc["deviations"]["entries"]
    if entries:
        out += ["", "## Known deviations", "", "| entry | status | tests | reason |", "| --- | --- | ---: | --- |"]
        for e in entries:
            out.append(f"| {code(e['id'])} | {md(_deviation_cell(e, doc))} | {len(e['tests'])} | "
                       f"{md(e['reason'])} ([rule]({md_url(e['link'])})) |")
    policies = expectation_rows(doc)
    if policies:
        out += ["", f"## Version-aware expectations (torch {md(doc['expectations']['torch'])})", "",
                "The policy each API follows for a query with no kept key on this release "
                "(`conformance/attention_apis.py`).", "",
                "| API | fully masked rows | releases | source |", "| --- | --- | --- | --- |"]
        out += [f"| {code(p['api'])} | {md(p['rows'])} | {code(p['torch'])} | {md(p['source'])} |" for p in policies]
    if doc["run"]["not_run"]:
        out += ["", f"## Not run ({len(doc['run']['not_run'])})", ""]
        out += [f"- {code(t)}" for t in doc["run"]["not_run"][:50]]
    return "\n".join(out) + "\n"


def reach_rows(doc: dict) -> list[tuple[str, int, int, str, list[str]]]:
    """(test id, claims reached with margin, claims, its three thinnest claims with their example
    counts, unreached claims) for each test that claims input classes."""
    from conformance import reach

    rows = []
    for r in doc["results"]:
        got = r.get("reach")
        if not got or not got["claimed"]:
            continue
        counts = {c: reach.claim_count(c, got["counts"]) for c in got["claimed"]}
        thin = sorted(counts.items(), key=lambda kv: kv[1])[:3]
        need = reach.margin(got.get("checked", 0))
        rows.append((r["id"], sum(1 for n in counts.values() if n >= need), len(counts),
                     "; ".join(f"{c if len(c) < 60 else c[:57] + '...'}: {n}" for c, n in thin),
                     got.get("unreached", [])))
    return rows


def md_url(url: str) -> str:
    url = str(url)
    return url if re.fullmatch(r"https?://[^\s()<>\"']+", url) else "#"


def _deviation_cell(e: dict, doc: dict) -> str:
    """An entry's status, and for a narrowed entry its inputs and how many examples deviated."""
    words = _deviation_status(e["status"])
    if e.get("inputs"):
        got = [r["deviated"] for r in doc["results"] if r["id"] in e["tests"] and r.get("deviated")]
        words += (f"; only inputs in {', '.join(e['inputs'])}: {sum(g['examples'] for g in got)} of "
                  f"{sum(g['in_scope'] for g in got)} such examples deviated, every other example checked")
    return words


def _deviation_status(s: str) -> str:
    return {"matched": "still deviates", "fixed": "FIXED: remove the entry",
            "unmatched": "matches no test: remove or correct it", "not_run": "not run",
            "not_applicable": "not for this torch release",
            "not_shown": "no example in its inputs deviated: fixed, or the run missed its trigger"}[s]


# --------------------------------------------------------------------------- html

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin:1.4em 0 .5em}
.env{color:#555}.status{font-size:1.1em;margin:.6em 0}
.badge{display:inline-block;padding:.15em .6em;margin:0 .3em .3em 0;border-radius:.8em}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.cell{text-align:center;min-width:6em}td.cell a{color:inherit}
.controls{margin:.6em 0;padding:.5em;background:#f8f8f8;border:1px solid #ddd}
.controls label{margin-right:1em}
details{margin:.4em 0;border:1px solid #ddd;padding:.3em .6em}summary{cursor:pointer}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;white-space:pre-wrap;word-break:break-word}
.hidden{display:none}
""" + "".join(f".o-{o}{{background:{bg};color:{fg}}}" for o, (bg, fg) in COLOURS.items())

SCRIPT = """
(function(){
  var text=document.getElementById('filter');
  if(!text){return;}
  var boxes=Array.prototype.slice.call(document.querySelectorAll('input[data-outcome]'));
  function apply(){
    var q=text.value.toLowerCase();
    var on={};boxes.forEach(function(b){on[b.getAttribute('data-outcome')]=b.checked;});
    document.querySelectorAll('[data-outcomes]').forEach(function(el){
      var outs=el.getAttribute('data-outcomes').split(' ');
      var hit=outs.some(function(o){return on[o];});
      var match=el.getAttribute('data-key').toLowerCase().indexOf(q)>=0;
      el.classList.toggle('hidden',!(hit&&match));
    });
  }
  text.addEventListener('input',apply);
  boxes.forEach(function(b){b.addEventListener('change',apply);});
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def esc(text) -> str:
    return htmllib.escape(str(text), quote=True)


def html_page(title: str, body: str, extra_style: str = "") -> str:
    """A self-contained page: the report's style (and `extra_style`), its filter script, and a
    Content-Security-Policy that allows exactly those two and nothing else."""
    style = STYLE + extra_style
    csp = f"default-src 'none'; style-src {_csp_hash(style)}; script-src {_csp_hash(SCRIPT)}; img-src data:"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{style}</style></head><body>\n{body}\n"
            f"<script>{SCRIPT}</script></body></html>\n")


def _controls(outcomes) -> str:
    boxes = "".join(f'<label class="o-{o} badge"><input type="checkbox" checked data-outcome="{o}"> '
                    f"{esc(schema.WORDS[o])}</label>" for o in outcomes)
    return (f'<div class="controls"><label>Filter: <input id="filter" type="search" '
            f'placeholder="property, id or parameter"></label> {boxes}</div>')


def _failure_block(r: dict, anchor: str) -> str:
    f = r["failure"]
    parts = [f'<details id="{anchor}" data-outcomes="{r["outcome"]}" data-key="{esc(r["id"])}">',
             f'<summary><span class="badge o-{r["outcome"]}">{esc(schema.WORDS[r["outcome"]])}</span> '
             f"<code>{esc(r['id'])}</code> {esc(f.get('what') or f.get('error_type') or '')}</summary>"]
    if r.get("rule"):
        parts.append(f"<p><b>Property:</b> {esc(r['rule'])}</p>")
    if f.get("rule"):
        parts.append(f"<p><b>Rule violated:</b> {esc(f['rule'])}</p>")
    if r.get("deviation"):
        d = r["deviation"]
        parts.append(f"<p><b>Known deviation</b> ({esc(d['file'])}): {esc(d['reason'])}</p>")
    if f.get("inputs"):
        parts.append("<p><b>Inputs</b></p><pre>" + esc("\n".join(f["inputs"])) + "</pre>")
    if f.get("expected") is not None or f.get("actual") is not None:
        parts.append(f"<p><b>Expected:</b> <code>{esc(f.get('expected'))}</code><br>"
                     f"<b>Actual:</b> <code>{esc(f.get('actual'))}</code></p>")
    if f.get("explanation"):
        parts.append("<p><b>Broadcast alignment</b></p><pre>" + esc(f["explanation"]) + "</pre>")
    parts.append("<p><b>Message</b></p><pre>" + esc(_clip(f.get("message"))) + "</pre>")
    if f.get("snippet"):
        parts.append("<p><b>Reproduce</b> (torch and numpy only)</p><pre>" + esc(f["snippet"]) + "</pre>")
    if f.get("hypothesis_blob"):
        parts.append(f"<p>Replay: <code>python -m reports replay report.json {esc(r['id'])}</code></p>")
    parts.append("</details>")
    return "\n".join(parts)


def flatten(value, prefix: str = "", out: dict | None = None) -> dict:
    """{'a.b[0].c': leaf}: nested objects (and lists of objects) as dotted keys to their leaves."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, v in enumerate(value):
            flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value
    return out


def html(doc: dict) -> str:
    devices, rows = matrix(doc)
    anchors = {r["id"]: f"f{i}" for i, r in enumerate(r for r in doc["results"] if r["failure"])}
    present = [o for o in schema.OUTCOMES if doc["counts"].get(o)] or list(schema.OUTCOMES)
    b = [f"<h1>Conformance report</h1><p class=\"env\">{esc(environment_line(doc))}</p>"
         + (f'<p class="env">{esc(considered_line(doc))}</p>' if considered_line(doc) else ""),
         f'<p class="status"><b>Status: {esc(status(doc))}</b></p><p>'
         + "".join(f'<span class="badge o-{o}">{esc(text)}</span>' for o, text in counted(doc)) + "</p>",
         _controls(present), "<h2>Property × device</h2>",
         "<table><thead><tr><th>property</th><th>params</th>"
         + "".join(f"<th>{esc(d)}</th>" for d in devices) + "</tr></thead><tbody>"]
    for name, params, cells in rows:
        outs = sorted({c["outcome"] for c in cells.values()})
        rule = next((c["rule"] for c in cells.values() if c.get("rule")), "")
        row = [f'<tr data-outcomes="{" ".join(outs)}" data-key="{esc(name + " " + params)}">'
               f'<td><code>{esc(name)}</code><br><small>{esc(rule)}</small></td><td>{esc(params)}</td>']
        for d in devices:
            c = cells.get(d)
            if c is None:
                row.append("<td></td>")
                continue
            label = esc(schema.WORDS[c["outcome"]])
            examples = f"<br><small>{c['examples']} examples, {c['time_s']:.1f} s</small>" \
                if c.get("examples") is not None else ""
            if c["id"] in anchors:
                label = f'<a href="#{anchors[c["id"]]}">{label}</a>'
            row.append(f'<td class="cell o-{c["outcome"]}" title="{esc(c["id"])}">{label}{examples}</td>')
        b.append("".join(row) + "</tr>")
    b.append("</tbody></table>")
    kernels, krows = kernel_matrix(doc)
    if krows:
        b.append("<h2>SDPA kernel × property</h2><p>Outcome, examples run, and how many the pinned kernel "
                 "refused, with its reason (<code>conformance/attention_apis.py</code>).</p><table><thead><tr>"
                 "<th>property</th>" + "".join(f"<th>{esc(k)}</th>" for k in kernels) + "</tr></thead><tbody>")
        for name, cells in krows:
            b.append(f"<tr><td><code>{esc(name)}</code></td>" + "".join(
                f'<td class="cell o-{cells[k]["outcome"]}">{esc(kernel_cell(cells[k]))}</td>' if k in cells
                else "<td></td>" for k in kernels) + "</tr>")
        b.append("</tbody></table>")
    gaps = gap_rows(doc)
    if gaps:
        b.append("<h2>Capability gaps</h2><p>Op × dtype × device the backend refused as unimplemented and "
                 "does not declare (<code>conformance/capabilities.py</code>): those examples were not "
                 "checked; the others were.</p><table><thead><tr><th>op</th><th>dtype</th><th>device</th>"
                 "<th>tests</th><th>examples</th><th>refusal</th></tr></thead><tbody>")
        b += [f"<tr><td><code>{esc(g['op'])}</code></td><td>{esc(g['dtype'])}</td><td>{esc(g['device'])}</td>"
              f"<td title=\"{esc(' '.join(g['tests']))}\">{len(g['tests'])}</td><td>{g['examples']}</td>"
              f"<td><code>{esc(g['message'])}</code></td></tr>" for g in gaps]
        b.append("</tbody></table>")
    if na := not_applicable_rows(doc):
        b.append("<h2>Not applicable on this device</h2><p>Checks the device cannot make, counted apart "
                 "and never as passed (<code>conformance/semantics.py</code>); every value check of these "
                 "tests ran.</p><table><thead><tr><th>device</th><th>check</th><th>tests</th>"
                 "<th>examples that skipped it</th><th>why</th></tr></thead><tbody>")
        b += [f"<tr><td>{esc(n['device'])}</td><td>{esc(n['what'])}</td>"
              f"<td title=\"{esc(' '.join(n['tests']))}\">{len(n['tests'])}</td><td>{n['examples'] or '-'}</td>"
              f"<td>{esc(n['why'])}</td></tr>" for n in na]
        b.append("</tbody></table>")
    failed = failures(doc)
    b.append(f"<h2>Failures ({len(failed)})</h2>")
    b += [_failure_block(r, anchors[r["id"]]) for r in failed] or ["<p>None.</p>"]
    reached = reach_rows(doc)
    if reached:
        b.append("<h2>Reach: claimed input classes</h2><p>Examples per class each test claims "
                 "(<code>conformance/reach/</code>; the fewest first).</p><table><thead><tr><th>test</th>"
                 "<th>claims reached</th><th>fewest examples</th><th>unreached</th></tr></thead><tbody>")
        b += [f"<tr><td><code>{esc(t)}</code></td><td>{n}/{total}</td><td>{esc(fewest)}</td>"
              f"<td>{esc(', '.join(missing)) or '-'}</td></tr>" for t, n, total, fewest, missing in reached]
        b.append("</tbody></table>")
    deviating = [r for r in doc["results"] if r["outcome"] == "known_deviation" and r["failure"]]
    entries = doc["deviations"]["entries"]
    b.append(f"<h2>Known deviations ({len(entries)} entries)</h2>")
    if entries:
        b.append("<table><thead><tr><th>entry</th><th>status</th><th>tests</th><th>reason</th></tr></thead><tbody>")
        for e in entries:
            link = (f' <a href="{esc(e["link"])}" rel="noreferrer">rule</a>'
                    if md_url(e["link"]) != "#" else f" {esc(e['link'])}")
            b.append(f"<tr><td><code>{esc(e['id'])}</code><br><small>{esc(e['file'])}</small></td>"
                     f"<td>{esc(_deviation_cell(e, doc))}</td><td>{len(e['tests'])}</td>"
                     f"<td>{esc(e['reason'])}{link}</td></tr>")
        b.append("</tbody></table>")
    b += [_failure_block(r, anchors[r["id"]]) for r in deviating]
    policies = expectation_rows(doc)
    if policies:
        b.append(f"<h2>Version-aware expectations (torch {esc(doc['expectations']['torch'])})</h2><table><thead>"
                 "<tr><th>API</th><th>fully masked rows</th><th>releases</th><th>source</th></tr></thead><tbody>")
        b += [f"<tr><td><code>{esc(p['api'])}</code></td><td>{esc(p['rows'])}</td><td><code>{esc(p['torch'])}"
              f"</code></td><td>{esc(p['source'])}</td></tr>" for p in policies]
        b.append("</tbody></table>")
    if doc["run"]["not_run"]:
        b.append(f"<h2>Not run ({len(doc['run']['not_run'])})</h2><ul>"
                 + "".join(f"<li><code>{esc(t)}</code></li>" for t in doc["run"]["not_run"]) + "</ul>")
    b.append("<h2>Environment</h2><table><tbody>")
    env = flatten({"suite": doc["suite"], "run": {k: v for k, v in doc["run"].items() if k != "not_run"},
                   **doc["environment"]})
    b += [f"<tr><th>{esc(k)}</th><td>{esc(', '.join(map(str, v)) if isinstance(v, list) else v)}</td></tr>"
          for k, v in env.items()]
    b.append("</tbody></table>")
    return html_page(f"Conformance report: {status(doc)}", "\n".join(b))
