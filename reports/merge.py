"""Merge the reports of shards into the report of the whole run.

CI owners split the suite across machines with ``--num-shards N --shard-id I`` (pytest-shard:
disjoint shards by a hash of the test id, the same split on every run).  Each shard writes its
own report; ``python -m reports merge SHARD... -o REPORT`` joins them into one, which compare then
judges as a whole, so a lost shard is lost coverage rather than a smaller green run.

Shards join only when they are the same run split N ways: the same suite commit, torch build,
backend, devices, profile and selection (-k, -m, paths), each shard id 0..N-1 exactly once, and no
test in two of them.  Anything else is refused with one line (`MergeError`).
"""

from __future__ import annotations

from reports import schema

# what must agree between shards: (words, how to read it from a report)
SAME = (
    ("suite commit", lambda d: (d["suite"].get("commit"), d["suite"].get("dirty"))),
    ("torch build", lambda d: (d["environment"]["torch"].get("version"), d["environment"]["torch"].get("cuda"))),
    ("Hypothesis profile", lambda d: (d["environment"]["hypothesis"].get("profile"),
                                      d["environment"]["hypothesis"].get("max_examples"))),
    ("backend", lambda d: (d["run"]["backend"], d["run"].get("backend_spec"))),
    ("devices", lambda d: tuple(d["run"]["devices"])),
    ("selection", lambda d: tuple((d["run"].get("selection") or {}).get(k) for k in ("paths", "keyword", "markexpr"))),
    ("number of shards", lambda d: ((d["run"].get("selection") or {}).get("shard") or {}).get("count")),
)

# a deviation entry's status across shards: the most telling one wins
_STATUS_ORDER = ("fixed", "matched", "unmatched", "not_run", "not_applicable")


class MergeError(ValueError):
    """Shards that do not make one whole run; the message is one line."""


def merge(shards: list[tuple[str, dict]]) -> dict:
    """One report of the run that `shards` ((path, report) pairs) split between them."""
    if not shards:
        raise MergeError("no shard reports given")
    for path, doc in shards:
        if not ((doc["run"].get("selection") or {}).get("shard")):
            raise MergeError(f"{path}: not a shard's report (it ran without --num-shards/--shard-id)")
    first_path, first = shards[0]
    for words, read in SAME:
        for path, doc in shards[1:]:
            if read(doc) != read(first):
                raise MergeError(f"{path} and {first_path} come from different runs: their {words} differ "
                                 f"({_show(read(first))} vs {_show(read(doc))})")
    count = first["run"]["selection"]["shard"]["count"]
    by_id: dict[int, str] = {}
    for path, doc in shards:
        sid = doc["run"]["selection"]["shard"]["id"]
        if sid in by_id:
            raise MergeError(f"{path} and {by_id[sid]} are both shard {sid} of {count}: shards overlap")
        by_id[sid] = path
    if missing := sorted(set(range(count)) - set(by_id)):
        raise MergeError(f"the shards do not cover the run: shard{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(str, missing))} of {count} missing (given: {', '.join(map(str, sorted(by_id)))})")
    seen: dict[str, str] = {}
    results = []
    for path, doc in shards:
        for r in doc["results"]:
            if r["id"] in seen:
                raise MergeError(f"{r['id']} is in both {seen[r['id']]} and {path}: shards overlap")
            seen[r["id"]] = path
            results.append(r)
    return _whole(first, [d for _, d in shards], sorted(results, key=lambda r: r["id"]), count)


def _show(value) -> str:
    return "/".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _whole(first: dict, docs: list[dict], results: list[dict], count: int) -> dict:
    import copy

    out = copy.deepcopy(first)
    run = out["run"]
    runs = [d["run"] for d in docs]
    run["started"] = min(r["started"] for r in runs)
    finished = [r["finished"] for r in runs]
    run["finished"] = None if None in finished else max(finished)
    durations = [r.get("duration_s") for r in runs]
    run["duration_s"] = None if None in durations else max(durations)  # shards run side by side
    statuses = [r.get("exit_status") for r in runs]
    run["exit_status"] = None if None in statuses else max(statuses)
    run["complete"] = all(r["complete"] for r in runs)
    planned = [r["planned"] for r in runs]
    run["planned"] = None if None in planned else sum(planned)
    run["not_run"] = sorted(t for r in runs for t in r["not_run"])
    run["argv"] = ["(merged)", *(f"shard {r['selection']['shard']['id']}: {' '.join(r['argv'])}" for r in runs)]
    run["selection"] = {**run["selection"], "shard": None, "shards": list(range(count))}
    out["results"] = results
    out["counts"] = schema.count_outcomes(results)
    entries: dict[str, dict] = {}
    for doc in docs:
        for e in doc["deviations"]["entries"]:
            have = entries.get(e["id"])
            if have is None:
                entries[e["id"]] = copy.deepcopy(e)
                continue
            have["tests"] = sorted(set(have["tests"]) | set(e["tests"]))
            have["status"] = min(have["status"], e["status"], key=_STATUS_ORDER.index)
    out["deviations"]["entries"] = list(entries.values())
    schema.validate(out)
    return out
