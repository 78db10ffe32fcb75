"""The property × release matrix: ``python -m reports matrix REPORT...``.

Reads one report per torch release (the ``ci`` profile, so every release ran the same
examples), and shows each test's outcome per release, then, for each pair of consecutive
releases, what changed — a behaviour changelog of PyTorch for this suite's rules:

* a **policy** change: an API's answer for a query with no kept key (the version-aware table of
  `conformance.attention_apis`, as each report recorded it), with the snippet that shows it;
* a **feature** a release adds (its properties run from then on);
* a **capability gap** closed or opened (`conformance.capabilities`);
* a **known deviation** that starts or stops holding (entries with a ``torch`` specifier);
* every **test** whose outcome changed, with the failure's minimal example and its
  reproduction snippet where there is one.

Each change is marked *explained* (a version-aware expectation accounts for it) or
*finding* (nothing does: a regression or a fix that the tables do not know about).
The matrix reads only what the reports recorded, never the running torch or the current
tables, so a report from a release the suite has never heard of renders like any other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.releases import parse
from reports import render, schema
from reports.compare import policy_diffs, release_explanation

NOT_RUN = "absent"


class MatrixError(ValueError):
    """Reports that cannot make one matrix; the message is one line."""


@dataclass
class Change:
    kind: str                 # "policy", "feature", "gap", "deviation", "test"
    subject: str              # the API, feature, op x dtype, entry id or test id
    before: str
    after: str
    explained: str | None     # the expectation that accounts for it, or None: a finding
    detail: str = ""          # failure message or source
    example: list[str] = field(default_factory=list)  # the minimal example's inputs
    snippet: str | None = None


@dataclass
class Matrix:
    releases: list[str]
    names: list[str]
    docs: list[dict]
    rows: list[tuple[str, list[dict | None]]]
    steps: list[tuple[str, str, list[Change]]]


def release_of(name: str, doc: dict) -> str:
    version = doc["environment"]["torch"]["version"]
    try:
        return str(parse(version))
    except ValueError:
        raise MatrixError(f"{name}: torch version {version!r} is not a PEP 440 version, so the report "
                          "cannot be placed among releases") from None


def build(named: list[tuple[str, dict]]) -> Matrix:
    """The matrix of reports (name, document), ordered by release."""
    if not named:
        raise MatrixError("no reports given")
    placed = sorted(((parse(release_of(n, d)), n, d) for n, d in named), key=lambda t: t[0])
    seen: dict[str, str] = {}
    for v, n, _ in placed:
        if str(v) in seen:
            raise MatrixError(f"{n} and {seen[str(v)]} are both torch {v}: give one report per release")
        seen[str(v)] = n
    releases = [str(v) for v, _, _ in placed]
    names = [n for _, n, _ in placed]
    docs = [d for _, _, d in placed]
    by_id = [{r["id"]: r for r in d["results"]} for d in docs]
    ids = sorted(set().union(*by_id))
    rows = [(t, [m.get(t) for m in by_id]) for t in ids]
    steps = [(releases[i], releases[i + 1], changes(docs[i], docs[i + 1], releases[i], releases[i + 1]))
             for i in range(len(docs) - 1)]
    return Matrix(releases, names, docs, rows, steps)


def _expect(doc: dict) -> dict:
    return doc.get("expectations") or {"policies": [], "features": {}, "missing": []}


def _gaps(doc: dict) -> dict[tuple, dict]:
    return {(g["op"], g["dtype"], g["device"]): g for g in render.gap_rows(doc)}


def changes(a: dict, b: dict, ra: str, rb: str) -> list[Change]:
    """What changed from the report of release `ra` to that of `rb`."""
    out: list[Change] = []
    ea, eb = _expect(a), _expect(b)
    for api, x, y in policy_diffs(a, b):
        out.append(Change("policy", api, x["rows"] if x else "-", y["rows"] if y else "-",
                          f"policy {api}: torch {(y or x)['torch']}", (y or x)["source"],
                          snippet=(y or x).get("example") or None))
    fa, fb = ea.get("features", {}), eb.get("features", {})
    added = {f for f in fa.keys() | fb.keys() if fa.get(f) != fb.get(f)}
    for f in sorted(added):
        out.append(Change("feature", f, "yes" if fa.get(f) else "no", "yes" if fb.get(f) else "no",
                          f"feature {f} in torch {rb}" if fb.get(f) else f"feature {f} gone in torch {rb}"))
    ga, gb = _gaps(a), _gaps(b)
    declared_missing = {(op, dt, dev) for m in ea.get("missing", []) + eb.get("missing", [])
                        for op in m.get("ops", []) for dt in m.get("dtypes", []) for dev in m.get("devices", [])}
    for key in sorted(ga.keys() | gb.keys()):
        if (key in ga) == (key in gb):
            continue
        g = ga.get(key) or gb[key]
        out.append(Change("gap", " × ".join(key), "gap" if key in ga else "computes", "gap" if key in gb else "computes",
                          "capability table (conformance/capabilities.py)" if key in declared_missing else None,
                          g["message"]))
    da = {e["id"]: e for e in a["deviations"]["entries"]}
    db = {e["id"]: e for e in b["deviations"]["entries"]}
    for entry in sorted(da.keys() | db.keys()):
        x, y = da.get(entry), db.get(entry)
        sa, sb = (x or {}).get("status", "-"), (y or {}).get("status", "-")
        if sa == sb:
            continue
        spec = (y or x).get("torch")
        why = (f"the entry holds for torch {spec}" if spec and "not_applicable" in (sa, sb) else
               "its tests did not run on one of the two releases (their changes are listed below)"
               if "not_run" in (sa, sb) else None)
        out.append(Change("deviation", entry, sa, sb, why, (y or x)["reason"][:300]))
    ra_ids = {r["id"]: r for r in a["results"]}
    rb_ids = {r["id"]: r for r in b["results"]}
    for test in sorted(ra_ids.keys() | rb_ids.keys()):
        x, y = ra_ids.get(test), rb_ids.get(test)
        oa, ob = (x or {}).get("outcome", NOT_RUN), (y or {}).get("outcome", NOT_RUN)
        if oa == ob:
            continue
        shown = y if ob in schema.BROKEN | {"known_deviation", "fixed"} else x
        failure = (shown or {}).get("failure") or {}
        explained = (release_explanation(x, y, a, b) if x and y else
                     "the suite's tests differ between the two reports")
        out.append(Change("test", test, oa, ob, explained,
                          " ".join(str(failure.get("what") or failure.get("message") or "").split())[:400],
                          list(failure.get("inputs") or [])[:12], failure.get("snippet")))
    return out


# --------------------------------------------------------------------------- rendering


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    text = render.SYMBOL[r["outcome"]]
    return text.upper() if r["outcome"] in schema.BROKEN else text


def markdown(m: Matrix) -> str:
    md, code = render.md, render.code
    out = ["# Property × torch release", "",
           "Generated by `python -m reports matrix` from the reports below (the `ci` profile, so every "
           "release ran the same examples). Outcomes: pass, FAIL, deviation (a known deviation), gap (a capability gap: "
           "some op × dtype has no kernel), skip.", "",
           "| release | report | suite | outcomes |", "| --- | --- | --- | --- |"]
    for rel, name, doc in zip(m.releases, m.names, m.docs):
        suite = (doc["suite"].get("commit") or "unknown")[:12]
        out.append(f"| {md(rel)} | {code(name)} | {code(suite)} | {md(render.headline(doc))} |")
    out += ["", "## Outcomes", "", "| test | " + " | ".join(map(md, m.releases)) + " |",
            "| --- |" + " :---: |" * len(m.releases)]
    for test, cells in m.rows:
        shown = [_cell(c) for c in cells]
        if len(set(shown)) > 1:
            shown = [f"**{s}**" for s in shown]
        out.append(f"| {code(test)} | " + " | ".join(shown) + " |")
    out += ["", "## What changed between consecutive releases"]
    for ra, rb, cs in m.steps:
        findings = sum(1 for c in cs if c.explained is None)
        out += ["", f"### torch {md(ra)} → {md(rb)}: {len(cs)} changes, {findings} not explained by an expectation", ""]
        if not cs:
            out.append("Nothing changed.")
        for c in cs:
            verdict = f"explained: {md(c.explained)}" if c.explained else "**finding**: no expectation explains it"
            out.append(f"- {md(c.kind)} {code(c.subject)}: {md(c.before)} → {md(c.after)} ({verdict})")
            if c.detail:
                out.append(f"  - {md(c.detail)}")
            if c.example:
                out.append("  - minimal example: " + "; ".join(code(e) for e in c.example))
            if c.snippet:
                out += ["", render.fence(c.snippet, "python"), ""]
    return "\n".join(out).rstrip() + "\n"


def html(m: Matrix) -> str:
    esc = render.esc
    b = ["<h1>Property × torch release</h1><p>Generated by <code>python -m reports matrix</code> from the "
         "reports below (the <code>ci</code> profile: every release ran the same examples).</p>",
         "<table><thead><tr><th>release</th><th>report</th><th>suite</th><th>outcomes</th></tr></thead><tbody>"]
    for rel, name, doc in zip(m.releases, m.names, m.docs):
        b.append(f"<tr><td>{esc(rel)}</td><td><code>{esc(name)}</code></td>"
                 f"<td><code>{esc((doc['suite'].get('commit') or 'unknown')[:12])}</code></td>"
                 f"<td>{esc(render.headline(doc))}</td></tr>")
    b.append("</tbody></table><h2>Outcomes</h2><table><thead><tr><th>test</th>"
             + "".join(f"<th>{esc(r)}</th>" for r in m.releases) + "</tr></thead><tbody>")
    for test, cells in m.rows:
        b.append(f"<tr><td><code>{esc(test)}</code></td>" + "".join(
            f'<td class="cell o-{c["outcome"]}">{esc(schema.WORDS[c["outcome"]])}</td>' if c else "<td>-</td>"
            for c in cells) + "</tr>")
    b.append("</tbody></table><h2>What changed between consecutive releases</h2>")
    for ra, rb, cs in m.steps:
        findings = sum(1 for c in cs if c.explained is None)
        b.append(f"<h3>torch {esc(ra)} → {esc(rb)}: {len(cs)} changes, {findings} not explained by an "
                 "expectation</h3>")
        b.append("<ul>" + "".join(_html_change(c) for c in cs) + "</ul>" if cs else "<p>Nothing changed.</p>")
    return render.html_page("Property × torch release", "\n".join(b))


def _html_change(c: Change) -> str:
    esc = render.esc
    verdict = f"explained: {esc(c.explained)}" if c.explained else "<b>finding</b>: no expectation explains it"
    parts = [f"<li>{esc(c.kind)} <code>{esc(c.subject)}</code>: {esc(c.before)} → {esc(c.after)} ({verdict})"]
    if c.detail:
        parts.append(f"<br><small>{esc(c.detail)}</small>")
    if c.example:
        parts.append("<br>minimal example: " + "; ".join(f"<code>{esc(e)}</code>" for e in c.example))
    if c.snippet:
        parts.append(f"<pre>{esc(c.snippet)}</pre>")
    return "".join(parts) + "</li>"
