"""Compare two reports: what regressed, what was fixed, what changed, and in which environment.

A test is keyed by its id (``module.py::property[params]``, the device among the params).
Its change of outcome from the baseline to the candidate falls in exactly one class:

* regression: it was passing (or a known deviation) and now fails, crashes or times out, or
  the candidate planned it and never finished it;
* still broken: broken in both reports;
* fix: broken or a known deviation before, passing now (a fixed deviation counts);
* deviation change: a passing test is now excused as a known deviation, or a deviation entry
  was added, removed or changed status;
* coverage change: it ran before and is skipped now, or the other way round;
* new / removed: in only one report;
* explained by the release: when the two reports ran different torch releases, a change that a
  version-aware expectation accounts for (a feature the older release lacks, a capability gap
  in the capability table, a known deviation whose ``torch`` specifier holds for one release
  only, an API policy that changed), listed apart from real regressions.

A test that starts to show a capability gap (``capability_gap``) on the same release is a
coverage change: some op × dtype lost its kernel, and its examples went unchecked.

Apart from changes, the candidate's **unreached** claims are listed: a property whose
examples reached an input class it claims in fewer than max(3, 1 %) of them (`conformance.reach`)
checked less than it says, or holds its claim by a thread that a re-draw of the examples cuts.  Regressions and unreached claims make ``python -m reports compare`` exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reports import render, schema

# The committed reference run: torch 2.13.0, CPU, the ci profile (docs/reports.md says how to refresh it).
BASELINE = Path(__file__).resolve().parent / "baselines" / "torch-2.13.0-cpu.json"

REACH_PROFILE = "ci"  # the profile whose examples the reach claims are about

WAS_GOOD = frozenset({"passed", "known_deviation", "fixed"})
VOUCHED = frozenset({"passed", "known_deviation", "capability_gap"})  # checked examples in the baseline


@dataclass
class Change:
    id: str
    before: str | None
    after: str | None
    note: str = ""


class Refused(ValueError):
    """Two reports that compare must not judge against each other unless told; one line."""


# what a report was asked to check, for reports written before run.selection existed
def selection(doc: dict) -> dict:
    run = doc["run"]
    sel = dict(run.get("selection") or {})
    sel.setdefault("backend", run.get("backend"))
    sel.setdefault("devices", run.get("devices", []))
    sel.setdefault("profile", doc["environment"]["hypothesis"].get("profile"))
    return sel


SCOPE = ("backend", "devices", "profile")  # a change of these is refused without --across


def checked(doc: dict) -> tuple[int, int]:
    """(tests that checked something, examples checked) in a report: what it vouches for."""
    tests = examples = 0
    for r in doc["results"]:
        if r["outcome"] in (*schema.UNCHECKED, "fixed") and not r.get("examples"):
            continue
        n = r.get("examples")
        n = 1 if n is None and r["outcome"] not in schema.UNCHECKED else (n or 0)
        n -= sum(g.get("examples", 0) for g in r.get("gaps") or [])
        if n > 0:
            tests += 1
            examples += n
    return tests, examples


@dataclass
class Diff:
    regressions: list[Change] = field(default_factory=list)
    lost: list[Change] = field(default_factory=list)
    subset: list[Change] = field(default_factory=list)
    scope: list[tuple[str, str, str]] = field(default_factory=list)
    numbers: list[tuple[str, int, int]] = field(default_factory=list)
    still_broken: list[Change] = field(default_factory=list)
    fixes: list[Change] = field(default_factory=list)
    deviation_changes: list[Change] = field(default_factory=list)
    coverage: list[Change] = field(default_factory=list)
    new: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)
    unreached: list[Change] = field(default_factory=list)
    explained: list[Change] = field(default_factory=list)
    environment: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    runs: tuple[str, str] = ("", "")  # what each report ran: backend, devices, profile

    SECTIONS = (("regressions", "Regressions"),
                ("lost", "Lost coverage: checked in the baseline, not in the candidate"),
                ("unreached", "Claimed input classes not reached"), ("fixes", "Fixes"),
                ("subset", "Not selected in the candidate (--allow-subset)"),
                ("still_broken", "Still broken"), ("deviation_changes", "Known deviations changed"),
                ("coverage", "Coverage changed"), ("explained", "Explained by the torch release"),
                ("new", "New tests"), ("removed", "Removed tests"))


def _failure_line(record: dict) -> str:
    f = record.get("failure") or {}
    text = f.get("what") or f.get("message") or ""
    return " ".join(str(text).split())[:200]


def compare(base: dict, cand: dict, *, allow_subset: bool = False, across: bool = False) -> Diff:
    """The changes from `base` to `cand`.  Raises Refused when the two ran another backend,
    other devices or another profile, unless `across`; with `allow_subset`, baseline tests the
    candidate did not select are listed apart instead of as lost coverage."""
    diff = Diff()
    sa, sb = selection(base), selection(cand)
    for key in (*SCOPE, "torch_build", "keyword", "markexpr", "shard", "paths"):
        if key in sa and key in sb and sa[key] != sb[key] or key in SCOPE and sa.get(key) != sb.get(key):
            diff.scope.append((key, _scope_words(sa.get(key)), _scope_words(sb.get(key))))
    changed = [(k, a, b) for k, a, b in diff.scope if k in SCOPE]
    if changed and not across:
        raise Refused("the reports ran different selections (" + "; ".join(f"{k}: {a} -> {b}" for k, a, b in changed)
                      + "): their outcomes are not comparable; pass --across to compare them anyway")
    diff.runs = (_run_words(sa), _run_words(sb))
    (ta, ea), (tb, eb) = checked(base), checked(cand)
    diff.numbers = [("tests that checked examples", ta, tb), ("examples checked", ea, eb)]
    old = {r["id"]: r for r in base["results"]}
    new = {r["id"]: r for r in cand["results"]}
    unfinished = set(cand["run"]["not_run"])
    profile = cand["environment"]["hypothesis"].get("profile")
    judge_reach = profile == REACH_PROFILE
    if not judge_reach:
        diff.warnings.append(f"input-class reach is claimed for the {REACH_PROFILE!r} profile; the candidate "
                             f"ran {profile!r}, so unreached classes are not judged")
    releases = _releases(base, cand)
    if releases:
        diff.warnings.append(f"the reports ran different torch releases ({releases[0]} -> {releases[1]}): "
                             "changes that a version-aware expectation accounts for are listed apart")
        diff.explained += _policy_changes(base, cand)
    for test_id in sorted(old.keys() | new.keys()):
        a, b = old.get(test_id), new.get(test_id)
        before = a["outcome"] if a else None
        after = b["outcome"] if b else None
        why = release_explanation(a, b, base, cand) if releases and a and b else None
        if why:
            diff.explained.append(Change(test_id, before, after, why))
            continue
        if a is None:
            note = _failure_line(b) if after in schema.BROKEN else ""
            diff.new.append(Change(test_id, None, after, note))
        elif b is None and test_id in unfinished:
            change = Change(test_id, before, "not run", "the candidate planned it but never finished it")
            (diff.regressions if before in WAS_GOOD else diff.still_broken).append(change)
        elif b is None and before in VOUCHED:
            change = Change(test_id, before, None, "not in the candidate")
            (diff.subset if allow_subset else diff.lost).append(change)
        elif b is None:
            diff.removed.append(Change(test_id, before, None))
        elif before in VOUCHED and after in schema.UNCHECKED:
            diff.lost.append(Change(test_id, before, after, f"{schema.WORDS[after]}: " + (b.get("skip_reason") or "no reason given")))
        elif before in VOUCHED and after in ("passed", "known_deviation") and b.get("examples") == 0:
            diff.lost.append(Change(test_id, before, after, "it checked no example"))
        elif before in WAS_GOOD and after in schema.BROKEN:
            diff.regressions.append(Change(test_id, before, after, _failure_line(b)))
        elif before in schema.BROKEN and after in schema.BROKEN:
            note = f"was {schema.WORDS[before]}" if before != after else ""
            diff.still_broken.append(Change(test_id, before, after, note or _failure_line(b)))
        elif after in ("passed", "fixed") and before in schema.BROKEN | {"known_deviation"}:
            diff.fixes.append(Change(test_id, before, after))
        elif before == "passed" and after == "known_deviation":
            diff.deviation_changes.append(Change(test_id, before, after,
                                                 f"now excused by {b['deviation']['id']!r}"))
        elif (before in schema.UNCHECKED) != (after in schema.UNCHECKED):
            diff.coverage.append(Change(test_id, before, after, b.get("skip_reason") or ""))
        elif after == "capability_gap" and before != after:
            diff.coverage.append(Change(test_id, before, after, "new capability gap: " + gap_words(b)))
        elif before == "capability_gap" and before != after:
            diff.coverage.append(Change(test_id, before, after, "capability gap closed: " + gap_words(a)))
        if judge_reach and b is not None and after not in (*schema.UNCHECKED, "capability_gap") \
                and (b.get("reach") or {}).get("unreached"):
            got = b["reach"]
            diff.unreached.append(Change(test_id, before, after, _thin(got["unreached"], got["counts"],
                                                                       got.get("checked", 0))))
    if judge_reach:
        # a property whose parameters the candidate ran only some of (an intended subset) cannot
        # be held to what all its parameters claim together
        partial = {_group(r) for r in base["results"] if r["id"] not in new} if allow_subset else set()
        diff.unreached += _unreached_by_property([r for r in cand["results"] if _group(r) not in partial])
    old_entries = {e["id"]: e for e in base["deviations"]["entries"]}
    new_entries = {e["id"]: e for e in cand["deviations"]["entries"]}
    for entry_id in sorted(old_entries.keys() | new_entries.keys()):
        a, b = old_entries.get(entry_id), new_entries.get(entry_id)
        if a is None:
            diff.deviation_changes.append(Change(entry_id, None, b["status"], "entry added: " + b["reason"][:160]))
        elif b is None:
            diff.deviation_changes.append(Change(entry_id, a["status"], None, "entry removed"))
        elif a["status"] != b["status"] and "not_run" not in (a["status"], b["status"]):
            if releases and "not_applicable" in (a["status"], b["status"]):
                diff.explained.append(Change(entry_id, a["status"], b["status"],
                                             f"the entry holds for torch {(b or a).get('torch')}"))
            else:
                diff.deviation_changes.append(Change(entry_id, a["status"], b["status"], "entry status changed"))
    env_a = render.flatten({"suite": base["suite"], "environment": base["environment"]})
    env_b = render.flatten({"suite": cand["suite"], "environment": cand["environment"]})
    for key in sorted(env_a.keys() | env_b.keys()):
        if env_a.get(key) != env_b.get(key):
            diff.environment.append((key, str(env_a.get(key, "-")), str(env_b.get(key, "-"))))
    if not cand["run"]["complete"]:
        diff.warnings.append(f"the candidate run is incomplete ({len(unfinished)} planned tests have no "
                             "result, or the session did not finish)")
    if not base["run"]["complete"]:
        diff.warnings.append("the baseline run is incomplete")
    return diff


def _run_words(sel: dict) -> str:
    return (f"backend {sel.get('backend')}, devices {_scope_words(sel.get('devices'))}, profile {sel.get('profile')}"
            + (f", torch build {sel['torch_build']}" if sel.get("torch_build") else ""))


def _scope_words(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, dict):
        return "/".join(f"{v}" for v in value.values())
    return "-" if value is None else str(value)


def _release(doc: dict) -> str | None:
    from conformance.releases import parse
    try:
        return str(parse(doc["environment"]["torch"]["version"]))
    except ValueError:
        return None


def _releases(base: dict, cand: dict) -> tuple[str, str] | None:
    """(baseline release, candidate release) when they differ."""
    a, b = _release(base), _release(cand)
    return (a or "?", b or "?") if a != b else None


def gap_words(record: dict) -> str:
    """A test's capability gaps in words: "softmax float16 on cpu, ..."."""
    return ", ".join(f"{g['op']} {g['dtype']} on {g['device']}" for g in record.get("gaps") or []) or "-"


def policy_diffs(base: dict, cand: dict) -> list[tuple[str, dict | None, dict | None]]:
    """(api, baseline policy, candidate policy) for each API whose fully-masked policy differs
    between the two reports' expectations (None: that release has no policy for the API)."""
    pa = {p["api"]: p for p in (base.get("expectations") or {}).get("policies", [])}
    pb = {p["api"]: p for p in (cand.get("expectations") or {}).get("policies", [])}
    return [(api, pa.get(api), pb.get(api)) for api in sorted(pa.keys() | pb.keys())
            if (pa.get(api) or {}).get("rows") != (pb.get(api) or {}).get("rows")]


def _policy_changes(base: dict, cand: dict) -> list[Change]:
    return [Change(f"policy {api}", x["rows"], y["rows"], f"torch {y['torch']}: {y['source']}")
            for api, x, y in policy_diffs(base, cand) if x and y]


def release_explanation(a: dict, b: dict, base: dict, cand: dict) -> str | None:
    """Why test record `a` (in report `base`) became `b` (in `cand`) between two torch releases,
    when a version-aware expectation accounts for it; None when nothing does (judge it as usual).
    compare and the release matrix (`reports.matrix`) both ask this."""
    before, after = a["outcome"], b["outcome"]
    if before == after:
        return None
    skipped = a if before == "skipped" else b if after == "skipped" else None
    # attention_apis.has(): "torch 2.1.2 lacks <feature> (torch >=2.3)"
    if skipped is not None and " lacks " in (skipped.get("skip_reason") or ""):
        return "a feature one release lacks: " + " ".join(skipped["skip_reason"].split())[:160]
    if "capability_gap" in (before, after) and not ({before, after} & schema.BROKEN):
        return "capability gap: " + gap_words(a if before == "capability_gap" else b)
    not_applicable = [e["id"] for doc in (base, cand) for e in doc["deviations"]["entries"]
                      if e["status"] == "not_applicable"]
    if "known_deviation" in (before, after) and {before, after} <= {"known_deviation", "passed"} \
            and any(a["id"].startswith(i) for i in not_applicable):
        return "a known deviation of some releases only (its torch specifier)"
    return None


def _group(r: dict) -> tuple:
    return r["module"], r["property"], r["device"]


def _unreached_by_property(results: list[dict]) -> list[Change]:
    """Property claims (across a property's parameters on one device) that no parameter reached."""
    from conformance import reach

    groups: dict[tuple, list[dict]] = {}
    for r in results:
        # a capability gap's examples went unchecked: its claims are a coverage matter (listed above)
        if r.get("reach") and r["reach"]["property_claims"] and r["outcome"] not in (*schema.UNCHECKED, "capability_gap"):
            groups.setdefault((r["module"], r["property"], r["device"]), []).append(r)
    out = []
    for (module, prop, device), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        counts: dict = {}
        for r in rs:
            for k, n in r["reach"]["counts"].items():
                counts[k] = counts.get(k, 0) + n
        checked = sum(r["reach"].get("checked", 0) for r in rs)
        claims = dict.fromkeys(c for r in rs for c in r["reach"]["property_claims"])
        if missing := reach.unreached(claims, counts, checked):
            out.append(Change(f"{module}::{prop}[{device}, all parameters]", None, None,
                              _thin(missing, counts, checked)))
    return out


def _thin(missing: list[str], counts: dict, checked: int) -> str:
    """Claims below their margin, each with the examples that reached it."""
    from conformance import reach

    shown = ", ".join(f"{c} ({reach.claim_count(c, counts)})" for c in missing[:8])
    return (f"{len(missing)} claimed classes reached by fewer than {reach.margin(checked)} of {checked} "
            f"checked examples (max(3, 1 %)): {shown}{' ...' if len(missing) > 8 else ''}")


def _checked_nothing(diff: Diff) -> bool:
    return bool(diff.numbers) and diff.numbers[1][2] == 0


def failing(diff: Diff) -> bool:
    """Whether compare exits 1: a regression, lost coverage, a claimed input class not reached,
    or a candidate that checked nothing."""
    return bool(diff.regressions or diff.lost or diff.unreached or _checked_nothing(diff))


def verdict(diff: Diff) -> str:
    """One line: what makes compare fail, or that nothing does."""
    parts = []
    if _checked_nothing(diff):
        parts.append("the candidate checked no example at all")
    if diff.regressions:
        parts.append(f"{len(diff.regressions)} tests that passed in the baseline now fail")
    if diff.lost:
        parts.append(f"{len(diff.lost)} tests checked in the baseline were not checked in the candidate")
    if diff.unreached:
        parts.append(f"{len(diff.unreached)} tests did not reach every input class they claim")
    return "REGRESSION: " + "; ".join(parts) if parts else "no regression"


def _words(outcome: str | None) -> str:
    return schema.WORDS.get(outcome, outcome) if outcome else "absent"


TEXT_LIMIT = 12  # lines per section on the terminal; the Markdown and HTML diffs list all


def text(diff: Diff, base_name: str, cand_name: str) -> str:
    lines = [f"compare {base_name} -> {cand_name}"]
    lines += [f"selection changed: {k}: {a} -> {b}" for k, a, b in diff.scope]
    lines += [f"{side}: {words}" for side, words in zip(("baseline", "candidate"), diff.runs) if words]
    lines += [f"{what}: baseline {a:,}, candidate {b:,}" for what, a, b in diff.numbers]
    if diff.subset:
        lines.append(f"--allow-subset: {len(diff.subset)} baseline tests the candidate did not select are "
                     "accepted as an intended subset")
    lines += [f"warning: {w}" for w in diff.warnings]
    for attr, title in Diff.SECTIONS:
        changes = getattr(diff, attr)
        if changes:
            lines.append(f"{title} ({len(changes)}):")
            shown = changes if attr in ("regressions", "lost", "unreached") else changes[:TEXT_LIMIT]
            for c in shown:
                note = f"  [{c.note}]" if c.note else ""
                lines.append(f"  {c.id}: {_words(c.before)} -> {_words(c.after)}{note}")
            if len(shown) < len(changes):
                lines.append(f"  ... and {len(changes) - len(shown)} more (see --markdown/--html)")
    if diff.environment:
        lines.append(f"Environment differences ({len(diff.environment)}):")
        lines += [f"  {k}: {a} -> {b}" for k, a, b in diff.environment]
    lines.append(verdict(diff))
    return "\n".join(lines) + "\n"


def markdown(diff: Diff, base_name: str, cand_name: str) -> str:
    md = render.md
    out = [f"# Conformance compare: {md(base_name)} → {md(cand_name)}", "",
           f"**{'REGRESSION' if failing(diff) else 'No regression'}**: "
           + ", ".join(f"{len(getattr(diff, a))} {t.lower()}" for a, t in Diff.SECTIONS), ""]
    out += [f"- selection changed: {md(k)}: {md(a)} → {md(b)}" for k, a, b in diff.scope]
    out += [f"- {side}: {md(words)}" for side, words in zip(("baseline", "candidate"), diff.runs) if words]
    out += [f"- {md(what)}: baseline {a:,}, candidate {b:,}" for what, a, b in diff.numbers]
    out += [""] + [f"> warning: {md(w)}" for w in diff.warnings]
    for attr, title in Diff.SECTIONS:
        changes = getattr(diff, attr)
        if changes:
            out += ["", f"## {title} ({len(changes)})", "", "| test | before | after | note |",
                    "| --- | --- | --- | --- |"]
            out += [f"| {render.code(c.id)} | {md(_words(c.before))} | {md(_words(c.after))} | {md(c.note)} |"
                    for c in changes]
    if diff.environment:
        out += ["", f"## Environment differences ({len(diff.environment)})", "",
                "| key | baseline | candidate |", "| --- | --- | --- |"]
        out += [f"| {md(k)} | {md(a)} | {md(b)} |" for k, a, b in diff.environment]
    return "\n".join(out) + "\n"


def html(diff: Diff, base_name: str, cand_name: str) -> str:
    esc = render.esc
    verdict = "REGRESSION" if failing(diff) else "No regression"
    b = [f"<h1>Conformance compare</h1><p class=\"env\">{esc(base_name)} → {esc(cand_name)}</p>",
         f'<p class="status"><b>{esc(verdict)}</b></p>']
    b += [f"<p><b>selection changed:</b> {esc(k)}: {esc(x)} → {esc(y)}</p>" for k, x, y in diff.scope]
    b += [f"<p>{side}: {esc(words)}</p>" for side, words in zip(("baseline", "candidate"), diff.runs) if words]
    b += [f"<p>{esc(what)}: baseline {x:,}, candidate {y:,}</p>" for what, x, y in diff.numbers]
    b += [f"<p><b>warning:</b> {esc(w)}</p>" for w in diff.warnings]
    for attr, title in Diff.SECTIONS:
        changes = getattr(diff, attr)
        if not changes:
            continue
        b.append(f"<h2>{esc(title)} ({len(changes)})</h2><table><thead><tr><th>test</th><th>before</th>"
                 "<th>after</th><th>note</th></tr></thead><tbody>")
        for c in changes:
            cls = lambda o: f' class="o-{o}"' if o in schema.OUTCOMES else ""  # noqa: E731
            b.append(f"<tr><td><code>{esc(c.id)}</code></td><td{cls(c.before)}>{esc(_words(c.before))}</td>"
                     f"<td{cls(c.after)}>{esc(_words(c.after))}</td><td>{esc(c.note)}</td></tr>")
        b.append("</tbody></table>")
    if diff.environment:
        b.append(f"<h2>Environment differences ({len(diff.environment)})</h2><table><thead><tr><th>key</th>"
                 "<th>baseline</th><th>candidate</th></tr></thead><tbody>")
        b += [f"<tr><td>{esc(k)}</td><td>{esc(x)}</td><td>{esc(y)}</td></tr>" for k, x, y in diff.environment]
        b.append("</tbody></table>")
    return render.html_page(f"Conformance compare: {verdict}", "\n".join(b))
