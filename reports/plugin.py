"""The pytest plugin that writes report.json, report.md and report.html as results arrive.

Registered by ``conformance/conftest.py``.  Under pytest-xdist each worker sends what only it
knows (examples run, the failure's structured details) to the controller inside the test
report's ``user_properties``; the controller (or the single process) owns the report, so a
worker that dies loses nothing but its own test, which the controller records as crashed or
timed out with the input the worker's flight recorder (``reports/inflight.py``) left behind.
"""

from __future__ import annotations

import collections
import functools
import inspect
import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import settings

from conformance import deviations as dev
from conformance import devices as devmod
from conformance import backends, failures, profiles, reach, semantics
from conformance.capabilities import CapabilityGap
from reports import environment, inflight, render, schema
from strategies import hypothesis_internals

PAYLOAD = "conformance-report"
CHECKED = "conformance-checked"  # examples a test checked, sent with or without a report
MAX_WORKER_RESTARTS = 100  # a backend that crashes in more tests than this stops the run
_BLOB = re.compile(r"@reproduce_failure\('([^']+)', b'([A-Za-z0-9+/=]*)'\)")
RENDER_EVERY_S = 2.0


def add_options(parser) -> None:
    group = parser.getgroup("conformance report")
    group.addoption("--report-dir", default=None,
                    help="where report.json/md/html go (default: reports/out under the checkout)")
    group.addoption("--no-report", action="store_true", help="write no report")
    group.addoption("--deviations", default=None,
                    help="comma-separated known-deviation files (default: the backend's DEVIATIONS, "
                         "conformance/deviations/torch.toml for torch); 'none' for no file")
    group.addoption("--replay-blob", default=None, metavar="VERSION:BLOB",
                    help="run each selected test once on the example Hypothesis encoded in BLOB "
                         "(what `python -m reports replay` passes)")


def deviation_files(config) -> list[Path]:
    option = config.getoption("--deviations")
    if option is None:
        per_device = [f for d in devmod.parse(config.getoption("--device"))
                      if (f := devmod.DEVIATION_FILES.get(devmod.device_type(d)))]
        return dev.default_files((*backends.active().deviations, *dict.fromkeys(per_device)))
    if option.strip().lower() == "none":
        return []
    return [Path(p.strip()) for p in option.split(",") if p.strip()]


_DRAW_TIME = [0.0]  # seconds spent in data.draw in this process (generation in the body)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _timeout_of(item) -> float | None:
    marker = item.get_closest_marker("timeout")
    if marker is not None and (marker.args or "timeout" in marker.kwargs):
        value = marker.args[0] if marker.args else marker.kwargs["timeout"]
    else:
        value = item.config.getoption("timeout", None)
        if value is None:
            try:
                value = item.config.getini("timeout")
            except ValueError:  # pytest-timeout is not installed
                value = None
    try:
        value = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value or None


def _rule_of(item) -> str | None:
    doc = inspect.getdoc(getattr(item, "function", None))
    return " ".join(doc.split("\n\n")[0].split()) if doc else None


def _params_of(item) -> dict[str, str]:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return {}
    return {k: str(getattr(v, "name", v)) for k, v in callspec.params.items()}


def _skip_reason(report) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def _skipped_outcome(report) -> str:
    """A storage-only property on a storage-less device is not applicable, not skipped: counted
    apart, so a report says what the device could not show (conformance/semantics.py)."""
    return "not_applicable" if _skip_reason(report).startswith(semantics.NOT_APPLICABLE) else "skipped"


# Exit statuses for a run that checked nothing: pytest's own "no tests" status, and its usage
# error where the cause is the backend (it implements none of the selected tests' ops).
EXIT_NOTHING_CHECKED = pytest.ExitCode.NO_TESTS_COLLECTED
EXIT_BACKEND_UNUSABLE = pytest.ExitCode.USAGE_ERROR
_MISSING_OPS = re.compile(r"^backend .* does not (implement|use torch tensors)")


def nothing_checked(tally: dict, exitstatus: int) -> tuple[int, str] | None:
    """(exit status, one line) when the run checked no example at all, else None: green must
    mean checked.  A run that already failed keeps its status."""
    if tally["examples"] or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        return None
    reasons = tally["skip_reasons"]
    skipped = sum(reasons.values())
    if not skipped:
        return EXIT_NOTHING_CHECKED, ("conformance: no example was checked: no test was selected "
                                      "(check the paths, -k and -m expressions, and the shard)")
    (top, n), = reasons.most_common(1)
    line = (f"conformance: no example was checked: all {skipped} selected tests were skipped "
            f"({top if n == skipped else f'{n} of them: {top}'})")
    if all(_MISSING_OPS.match(r) for r in reasons):
        return EXIT_BACKEND_UNUSABLE, line
    return EXIT_NOTHING_CHECKED, line


def _build_tag(torch_env: dict) -> str:
    """'cpu', 'cu121', 'rocm6.1', from the torch build the report records."""
    version = torch_env.get("version") or ""
    if "+" in version:
        return version.split("+", 1)[1]
    if torch_env.get("cuda"):
        return "cu" + torch_env["cuda"].replace(".", "")
    if torch_env.get("hip"):
        return "rocm" + torch_env["hip"]
    return "cpu"


def selection(config, backend, devices: list[str], profile: str, torch_env: dict) -> dict:
    """What this run was asked to check: a compare of two reports is only fair between runs that
    checked the same things, and a merge only of shards of one selection."""
    num = config.getoption("num_shards", None)
    # pytest-shard's default is one shard: the whole run
    shard = {"count": int(num), "id": int(config.getoption("shard_id") or 0)} if num and int(num) > 1 else None
    root = Path(str(config.rootpath))
    paths = []
    for arg in config.args:
        path, _, rest = str(arg).partition("::")
        try:
            path = Path(path).resolve().relative_to(root).as_posix()
        except ValueError:
            pass
        paths.append(path + ("::" + rest if rest else ""))
    return {"backend": backend.name, "backend_spec": backend.spec, "devices": list(devices),
            "devices_named": bool(config.getoption("--device")),
            "paths": paths, "keyword": config.option.keyword or None,
            "markexpr": config.option.markexpr or None, "shard": shard, "profile": profile,
            "torch_build": _build_tag(torch_env)}


def _claims(item) -> tuple[list, list, list]:
    """(the test's own claims, its property's, layout claims its device cannot receive).  Input
    classes are read off torch tensors: another backend's claims are not judged."""
    if not backends.active().torch_arrays:
        return [], [], []
    own, shared = reach.claimed(item)
    device = _params_of(item).get("device")
    if device is None:
        return list(own), list(shared), []
    own, dropped = semantics.receivable(own, device)
    shared, dropped_shared = semantics.receivable(shared, device)
    return own, shared, list(dict.fromkeys([*dropped, *dropped_shared]))


def split_id(test_id: str) -> tuple[str, str]:
    """'test_m.py::test_p[cpu]' -> ('test_m.py', 'test_p')."""
    module, _, rest = test_id.partition("::")
    return module, rest.split("[", 1)[0]


def describe_failure(exc: BaseException, report, last_case) -> dict:
    """Plain data for a failed test: the structured ConformanceFailure, or the error and the
    inputs of the last example the property started (Hypothesis replays the minimal one last)."""
    errors = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
    main = next((e for e in errors if isinstance(e, failures.ConformanceFailure)), errors[0])
    notes = [str(n) for n in getattr(main, "__notes__", [])]
    blob = next((m for n in notes if (m := _BLOB.search(n))), None)
    falsifying = "\n".join(n.strip("\n") for n in notes if "reproduce_failure" not in n).strip()
    if isinstance(main, failures.ConformanceFailure):
        out = {"kind": "violation", **main.details}  # a NondeterministicFailure's details say "nondeterministic"
        message = str(main)
    else:
        state = last_case.state() if last_case is not None else {}
        out = {"kind": "error", "rule": state.get("rule"), "device": state.get("device"),
               "inputs": state.get("inputs", []), "snippet": state.get("snippet")}
        message = f"{type(main).__name__}: {main}"
        out["traceback"] = report.longreprtext[-8000:]
    out.update(error_type=type(main).__name__, message=message[:20000], phase=report.when,
               falsifying_example=falsifying or None, distinct_failures=len(errors),
               hypothesis_blob=f"{blob.group(1)}:{blob.group(2)}" if blob else None)
    out.setdefault("inputs", [])
    out.setdefault("snippet", None)
    return out


_STARTED = pytest.StashKey[float]()


def configure(config) -> None:
    """What must be set at pytest_configure, before the report plugin may exist: when the run
    started, and (on an xdist controller) how many dead workers xdist replaces."""
    config.stash[_STARTED] = time.time()
    if not hasattr(config, "workerinput") and hasattr(config.option, "maxworkerrestart") \
            and config.option.maxworkerrestart is None:
        config.option.maxworkerrestart = str(MAX_WORKER_RESTARTS)


class ReportPlugin:
    def __init__(self, config):
        self.config = config
        self.worker_id = config.workerinput["workerid"] if hasattr(config, "workerinput") else None
        self.controller = self.worker_id is None
        root = Path(str(config.rootpath))
        self.root = root
        self.enabled = not (config.getoption("--no-report") or config.option.collectonly)
        self.out = Path(config.getoption("--report-dir") or root / "reports" / "out").resolve()
        self.deviation_files = deviation_files(config)
        self.deviations = dev.load(self.deviation_files)
        if self.enabled:
            hypothesis_internals.time_draws(_DRAW_TIME)
        self.recorder = None
        self.last_case = None
        self.calls = 0
        self.discarded = 0
        self.body_time = 0.0
        self.classes: collections.Counter = collections.Counter()
        # controller state
        self.records: dict[str, dict] = {}
        self.meta: dict[str, dict] = {}
        self.planned: list[str] | None = None
        self.doc: dict | None = None
        self.last_render = 0.0
        self.t0 = config.stash.get(_STARTED, time.time())
        self.tally = {"tests": 0, "examples": 0, "skip_reasons": collections.Counter()}
        self.gaps: dict[tuple, dict] = {}  # the current test's capability gaps
        self.deviated: dict | None = None  # the current test's examples of a narrowed deviation
        self.compiled: int | None = None  # graphs the current test compiled (backends.compiles)
        self.claims: tuple = ([], [], [])  # the current test's (own, property's, not receivable) claims

    # ------------------------------------------------------------------ every process

    def _inflight_path(self, worker: str) -> Path:
        return self.out / ".inflight" / f"{worker}.rec"

    def pytest_sessionstart(self, session):
        if not self.enabled or self.recorder is not None:  # (conftest may call it itself)
            return
        self.recorder = inflight.Recorder(self._inflight_path(self.worker_id or "main"))
        failures.set_recorder(self._note_case)
        if self.controller:
            self._start_document()

    def _note_case(self, case) -> None:
        self.last_case = case
        self.recorder.example(case)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        if self.recorder is not None:
            self.recorder.begin(item.nodeid, _timeout_of(item))
        yield
        if self.recorder is not None:
            self.recorder.end()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        handle = getattr(getattr(item, "obj", None), "hypothesis", None)
        blob = self.config.getoption("--replay-blob")
        if handle is None:
            yield
            return
        if blob:
            from hypothesis import reproduce_failure
            version, _, data = blob.partition(":")
            reproduce_failure(version, data.encode())(item.obj)
        self.calls, self.discarded, self.body_time, self.last_case = 0, 0, 0.0, None
        self.compiled = None
        self.draw_start = _DRAW_TIME[0]

        self.classes = collections.Counter()
        self.classified = 0
        self.gaps: dict[tuple, dict] = {}
        reach.take_tally()
        self.claims = _claims(item)
        own, shared, _ = self.claims
        # the loaded profile's examples bound every test's (`profiles.fraction` only lowers them)
        self.pending = reach.Pending((*own, *shared), need=reach.margin(settings.default.max_examples))
        entry = dev.matching(self.deviations, dev.relative_id(item.nodeid))
        narrowed = entry if entry is not None and entry.inputs else None
        self.deviated = None if narrowed is None else {"inputs": list(narrowed.inputs), "in_scope": 0,
                                                       "examples": 0, "first": None}

        def counting(inner):
            @functools.wraps(inner)
            def counted(*args, **kwargs):
                self.last_case = None
                t = time.perf_counter()
                # every example is classified until the test has reached every class it claims, then
                # one in CLASSIFY_EVERY (classifying every op call costs a sixth of the gate); all of
                # them under a narrowed deviation entry, which is judged by each example's classes
                record = narrowed is not None or not self.pending.done or self.calls % reach.CLASSIFY_EVERY == 0
                if record:
                    reach.begin()
                try:
                    result = inner(*args, **kwargs)
                except CapabilityGap as gap:  # not checked: the backend has no kernel for it
                    if record:
                        reach.end()
                    self._gap(gap)
                    self.calls += 1
                    return None
                except hypothesis_internals.DISCARDED:  # thrown away before the body checks anything
                    if record:
                        reach.end()
                    self.discarded += 1
                    raise
                except failures.ConformanceFailure as failure:
                    classes = reach.end() if record else set()
                    self.calls += 1
                    if narrowed is not None and narrowed.covers(classes):  # known: counted, not checked
                        self.deviated["in_scope"] += 1
                        self.deviated["examples"] += 1
                        self.deviated["first"] = self.deviated["first"] or str(failure).splitlines()[0][:300]
                        return None
                    if record:
                        self._reached(classes)
                    raise
                except BaseException:
                    if record:
                        self._reached(reach.end())
                    self.calls += 1
                    raise
                finally:
                    self.body_time += time.perf_counter() - t
                if record:
                    classes = reach.end()
                    self._reached(classes)
                    if narrowed is not None and narrowed.covers(classes):
                        self.deviated["in_scope"] += 1
                self.calls += 1
                return result
            return counted

        device = _params_of(item).get("device")
        before = backends.compiles([device] if device else [])
        try:
            with hypothesis_internals.wrapped_body(item.obj, counting):
                yield
        finally:
            after = backends.compiles([device] if device else []) if before is not None else None
            self.compiled = None if after is None else after - before

    def _gap(self, gap: CapabilityGap) -> None:
        entry = self.gaps.setdefault(gap.key(), {"op": gap.op, "dtype": gap.dtype, "device": gap.key()[2],
                                                 "kernel": gap.kernel, "message": gap.message[:300],
                                                 "examples": 0})
        entry["examples"] += 1

    def _reach_of(self) -> dict:
        own, shared, dropped = self.claims
        got = {"claimed": list(own), "property_claims": list(shared), "classified": self.classified,
               "checked": self.calls - self._unchecked(),
               "counts": dict(sorted(self.classes.items())), "tallied": reach.take_tally()}
        if dropped:
            groups: dict[str, list[str]] = {}
            for claim, why in dropped:
                groups.setdefault(why, []).append(claim)
            got["not_receivable"] = [{"claims": claims, "why": why} for why, claims in groups.items()]
        return got

    def _reached(self, classes: set) -> None:
        """Count a checked example's input classes, and show them to Hypothesis."""
        self.classes.update(classes)
        self.classified += 1
        self.pending.reached(classes)
        reach.announce(classes)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = (yield).get_result()
        data: dict = {"when": report.when}
        if report.when == "setup":
            data.update(rule=_rule_of(item), params=_params_of(item))
        hypothesis_call = report.when == "call" and hasattr(getattr(item, "obj", None), "hypothesis")
        if hypothesis_call:
            report.user_properties.append((CHECKED, self.calls - self._unchecked()))
        if not self.enabled:
            return
        if hypothesis_call:
            if not_applicable := semantics.take():
                data["not_applicable"] = not_applicable
            if self.compiled is not None:
                data["compiles"] = self.compiled
            data.update(examples=self.calls, discarded=self.discarded, body_time_s=round(self.body_time, 4),
                        draw_time_s=round(_DRAW_TIME[0] - self.draw_start, 4),
                        reach=self._reach_of(), gaps=list(self.gaps.values()))
            if self.deviated is not None:
                data["deviated"] = self.deviated
        if call.excinfo is not None and (report.failed or hasattr(report, "wasxfail")):
            data["failure"] = describe_failure(call.excinfo.value, report,
                                               self.last_case if report.when == "call" else None)
        report.user_properties.append((PAYLOAD, json.dumps(data)))

    # ------------------------------------------------------------------ controller

    def pytest_collection_finish(self, session):
        if self.controller and self.enabled:
            self.planned = [item.nodeid for item in session.items]

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        if self.planned is None:
            self.planned = list(ids)

    def _start_document(self) -> None:
        config = self.config
        selected = devmod.parse(config.getoption("--device"))
        current = settings()
        profile = {"profile": config.getoption("hypothesis_profile", None)
                   or os.environ.get("HYPOTHESIS_PROFILE") or profiles.DEFAULT,
                   "max_examples": current.max_examples, "derandomize": current.derandomize,
                   "seed": config.getoption("hypothesis_seed", None)}
        devices = [{"name": d, "description": devmod.describe(d), "available": devmod.is_available(d)}
                   for d in selected]
        workers = getattr(config.option, "numprocesses", None) or 0
        env = environment.capture(devices, profile, int(workers) if str(workers).isdigit() else 0)
        backend = backends.active()
        considered = [{"name": d, "available": p.available, "description": p.description,
                       "why": p.why or None, "used": d in selected}
                      for d in dict.fromkeys([*devmod.considered(), *selected]) for p in [devmod.probe(d)]]
        self.doc = {
            "schema": schema.NAME, "schema_version": schema.VERSION,
            "suite": {"name": schema.SUITE, **environment.suite_revision(self.root)},
            "run": {"started": _now(), "finished": None, "duration_s": None, "complete": False,
                    "exit_status": None, "backend": backend.name, "backend_spec": backend.spec,
                    "devices": selected,
                    "argv": [str(a) for a in config.invocation_params.args],
                    "selection": selection(config, backend, selected, profile["profile"], env["torch"]),
                    "devices_considered": considered,
                    "planned": None, "not_run": [], "report_dir": str(self.out)},
            "environment": env, "expectations": environment.expectations(backend), "counts": {},
            "deviations": {"files": [str(p) for p in self.deviation_files], "entries": []},
            "results": [],
        }
        self._write(final=True)

    def _payloads(self, report) -> dict:
        merged: dict = {}
        for key, value in report.user_properties:
            if key == PAYLOAD:
                data = json.loads(value)
                if data.get("when") == report.when:
                    merged.update(data)
        return merged

    def _record(self, nodeid: str) -> dict:
        """The test's record, created when its result (not just its setup) arrives, so a test
        that is still running (or hung when the run was killed) counts as not run."""
        if nodeid not in self.records:
            test_id = dev.relative_id(nodeid)
            module, prop = split_id(test_id)
            deviation = dev.matching(self.deviations, test_id)
            meta = self.meta.pop(nodeid, {})
            params = meta.get("params", {})
            self.records[nodeid] = {
                "id": test_id, "property": prop, "module": module, "rule": meta.get("rule"),
                "params": params, "device": params.get("device"), "outcome": "passed",
                "examples": None, "discarded": None, "time_s": meta.get("time_s", 0.0),
                "body_time_s": None,
                "draw_time_s": None,
                "skip_reason": None,
                "deviation": None if deviation is None else {
                    "id": deviation.id, "reason": deviation.reason, "link": deviation.link,
                    "file": deviation.file},
                "failure": None,
            }
        return self.records[nodeid]

    def _unchecked(self) -> int:
        """Examples of the current test that ran but checked nothing: capability gaps, and
        examples of a narrowed known deviation that deviated."""
        return sum(g["examples"] for g in self.gaps.values()) + (self.deviated or {}).get("examples", 0)

    def _tally(self, report) -> None:
        """What the run checked, kept with or without a report: the exit status depends on it."""
        if report.when == "call" and (not report.skipped or hasattr(report, "wasxfail")):
            examples = [v for k, v in report.user_properties if k == CHECKED]
            self.tally["tests"] += 1
            self.tally["examples"] += examples[0] if examples else 1  # a test without Hypothesis: one check
        elif report.skipped:
            self.tally["skip_reasons"][_skip_reason(report)] += 1

    def pytest_runtest_logreport(self, report):
        if self.controller:
            self._tally(report)
        if not (self.controller and self.enabled and self.doc is not None):
            return
        data = self._payloads(report)
        if report.when == "setup" and report.passed:
            self.meta[report.nodeid] = {"rule": data.get("rule"), "params": data.get("params", {}),
                                        "time_s": report.duration or 0.0}
            return
        if report.when == "setup":
            self.meta[report.nodeid] = {"rule": data.get("rule"), "params": data.get("params", {})}
        rec = self._record(report.nodeid)
        rec["time_s"] = round(rec["time_s"] + (report.duration or 0.0), 4)
        if report.when == "???":  # pytest-xdist: the worker died while running this test
            self._crashed(rec, report)
        elif report.when == "setup":
            if report.skipped:
                rec["outcome"], rec["skip_reason"] = _skipped_outcome(report), _skip_reason(report)
            else:
                rec["outcome"], rec["failure"] = "failed", data.get("failure") or self._bare(report)
        elif report.when == "call":
            rec["examples"] = data.get("examples")
            rec["discarded"] = data.get("discarded")
            rec["body_time_s"] = data.get("body_time_s")
            rec["draw_time_s"] = data.get("draw_time_s")
            if data.get("gaps"):
                rec["gaps"] = data["gaps"]
            if data.get("compiles") is not None:
                rec["compiles"] = data["compiles"]
            if data.get("not_applicable"):
                rec["not_applicable"] = data["not_applicable"]
            if "reach" in data:
                got = data["reach"]
                rec["reach"] = {**got, "unreached": reach.unreached(got["claimed"], got["counts"], got.get("checked", 0))}
            if data.get("deviated"):
                rec["deviated"] = data["deviated"]
            if hasattr(report, "wasxfail"):
                rec["outcome"] = "known_deviation"
                rec["failure"] = data.get("failure")
            elif report.passed and (data.get("deviated") or {}).get("examples"):
                rec["outcome"] = "known_deviation"  # narrowed: its other examples all passed
            elif report.passed:
                rec["outcome"] = "capability_gap" if data.get("gaps") else "passed"
            elif report.skipped:
                rec["outcome"], rec["skip_reason"] = _skipped_outcome(report), _skip_reason(report)
            elif str(report.longrepr).startswith("[XPASS(strict)]"):
                rec["outcome"] = "fixed"
                rec["failure"] = {"kind": "fixed", "error_type": "XPASS", "inputs": [], "snippet": None,
                                  "message": f"the known deviation {rec['deviation']['id']!r} no longer "
                                             f"shows: the property passed. Remove the entry from "
                                             f"{rec['deviation']['file']}."}
            else:
                failure = data.get("failure") or self._bare(report)
                rec["outcome"] = "timed_out" if self._timeout_message(failure) else "failed"
                rec["failure"] = failure
        elif report.when == "teardown" and report.failed and rec["outcome"] in ("passed", "skipped", "not_applicable"):
            rec["outcome"], rec["failure"] = "failed", data.get("failure") or self._bare(report)
        self._write()

    @staticmethod
    def _timeout_message(failure: dict) -> bool:
        return failure.get("error_type") == "Failed" and "Timeout" in failure.get("message", "")

    @staticmethod
    def _bare(report) -> dict:
        return {"kind": "error", "error_type": "error", "inputs": [], "snippet": None,
                "phase": report.when, "message": report.longreprtext[-20000:]}

    def _crashed(self, rec: dict, report) -> None:
        node = getattr(report, "node", None)
        worker = getattr(getattr(node, "gateway", None), "id", None)
        left = inflight.read(self._inflight_path(worker)) if worker else None
        example, elapsed, limit = {}, None, None
        if left and left.get("nodeid") == report.nodeid:
            example = left.get("example") or {}
            elapsed = time.time() - float(left.get("started", time.time()))
            limit = left.get("timeout")
        timed_out = bool(limit) and elapsed is not None and elapsed >= 0.98 * float(limit)
        rec["outcome"] = "timed_out" if timed_out else "crashed"
        if elapsed is not None:
            rec["time_s"] = round(elapsed, 3)
        how = (f"it ran past its time limit of {limit:g} s and pytest-timeout stopped the process"
               if timed_out else "the process died (abort, segfault or os._exit)")
        when = f" after {elapsed:.1f} s" if elapsed is not None else ""
        what = ("the example it was running is below" if example.get("inputs")
                else "it had not started an example (the crash came before any input was built)")
        rec["failure"] = {
            "kind": "timeout" if timed_out else "crash",
            "error_type": "Timeout" if timed_out else "WorkerCrash",
            "phase": "call", "rule": example.get("rule"), "device": example.get("device"),
            "inputs": example.get("inputs", []), "snippet": example.get("snippet"),
            "message": f"worker {worker or '?'} died while running {rec['id']}{when}: {how}; {what}.",
        }

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if self.controller and not self.config.option.collectonly:
            self.verdict = nothing_checked(self.tally, exitstatus)
            if self.verdict is not None:
                session.exitstatus = exitstatus = self.verdict[0]
        if not self.enabled:
            return
        if self.controller and self.doc is not None:
            run = self.doc["run"]
            run["finished"] = _now()
            run["duration_s"] = round(time.time() - self.t0, 2)
            run["exit_status"] = int(exitstatus)
            self._write(final=True, finished=True)
        if self.recorder is not None:
            failures.set_recorder(None)
            self.recorder.close()
            if self.controller:  # what crashed workers left is in the report now
                for left in self.recorder.path.parent.glob("*.rec"):
                    left.unlink(missing_ok=True)
                self.recorder.path.parent.rmdir()

    def pytest_terminal_summary(self, terminalreporter):
        if self.controller and getattr(self, "verdict", None):
            terminalreporter.write_line(f"ERROR: {self.verdict[1]}", red=True, bold=True)
        if not (self.controller and self.enabled and self.doc is not None):
            return
        terminalreporter.section("conformance report")
        for entry in self.doc["deviations"]["entries"]:
            if entry["status"] == "fixed":
                terminalreporter.write_line(f"known deviation fixed: remove {entry['id']!r} from {entry['file']}")
            elif entry["status"] == "not_shown":
                terminalreporter.write_line(f"known deviation {entry['id']!r} ({entry['file']}): no example in its "
                                            f"inputs deviated: fixed, or this run missed its trigger")
            elif entry["status"] == "unmatched":
                terminalreporter.write_line(f"known deviation {entry['id']!r} ({entry['file']}) matches no "
                                            "collected test: remove or correct it")
        terminalreporter.write_line(render.headline(self.doc))
        for name in ("report.json", "report.md", "report.html"):
            terminalreporter.write_line(f"written: {self.out / name}")

    # ------------------------------------------------------------------ writing

    def _deviation_entries(self, finished: bool) -> list[dict]:
        planned = [dev.relative_id(n) for n in (self.planned or [])]
        by_id = {r["id"]: r for r in self.records.values()}
        entries = []
        for d in self.deviations:
            tests = sorted(t for t in set(planned) | set(by_id) if d.matches(t))
            outcomes = {by_id[t]["outcome"] for t in tests if t in by_id}
            if not d.applies():
                status, tests = "not_applicable", []
            elif "fixed" in outcomes:
                status = "fixed"
            elif d.inputs and outcomes - schema.UNCHECKED and not any(
                    (by_id[t].get("deviated") or {}).get("examples") for t in tests if t in by_id):
                status = "not_shown"  # narrowed, and no example in its inputs deviated
            elif outcomes - schema.UNCHECKED:  # tests that all skipped (an API a release lacks) judge nothing
                status = "matched"
            elif tests or not finished or self.planned is None or not self._covers(d, planned):
                status = "not_run"
            else:
                status = "unmatched"
            entries.append({"id": d.id, "reason": d.reason, "link": d.link, "file": d.file,
                            "torch": d.torch, "status": status, "tests": tests,
                            **({"inputs": list(d.inputs)} if d.inputs else {})})
        return entries

    def _covers(self, d: dev.Deviation, planned: list[str]) -> bool:
        """Whether this run collected the module the entry names (or the module is gone), so that
        matching nothing means the entry is wrong rather than outside a partial run."""
        if (self.doc["run"].get("selection") or {}).get("shard"):
            return False  # a shard runs part of each module: the entry's test may be in another shard
        if "[" in d.id:  # an entry for one device (test_x[cpu-...]) says nothing in a run without it
            named = devmod.device_type(d.id.split("[", 1)[1].split("-", 1)[0].rstrip("]"))
            run_devices = {devmod.device_type(x) for x in self.doc["run"].get("devices") or []}
            if named in (*devmod.PROBES, *devmod.considered()) and named not in run_devices:
                return False
        module = d.id.split("::", 1)[0]
        exists = (self.root / "conformance" / module).is_file()
        return not exists or any(t.startswith(module + "::") for t in planned)

    def _write(self, final: bool = False, finished: bool = False) -> None:
        doc = self.doc
        results = sorted(self.records.values(), key=lambda r: r["id"])
        doc["results"] = results
        doc["counts"] = schema.count_outcomes(results)
        run = doc["run"]
        run["planned"] = None if self.planned is None else len(self.planned)
        done = set(self.records)
        run["not_run"] = [dev.relative_id(n) for n in (self.planned or []) if n not in done]
        run["complete"] = bool(finished and self.planned is not None and not run["not_run"]
                               and run["exit_status"] in (0, 1, EXIT_BACKEND_UNUSABLE, EXIT_NOTHING_CHECKED))
        doc["deviations"]["entries"] = self._deviation_entries(finished)
        self.out.mkdir(parents=True, exist_ok=True)
        # indented only at the end: json's indenting encoder is pure Python, ten times slower than
        # the compact one in C (30 s of a serial gate's 238 rewrites, CPU the xdist workers lose)
        _atomic_write(self.out / "report.json", (json.dumps(doc, indent=1) if final else
                                                 json.dumps(doc, separators=(",", ":"))) + "\n")
        now = time.monotonic()
        if final or now - self.last_render >= RENDER_EVERY_S:
            self.last_render = now
            _atomic_write(self.out / "report.md", render.markdown(doc))
            _atomic_write(self.out / "report.html", render.html(doc))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
