"""Conformance reports: written during a run, compared between runs, replayed.

* ``plugin``: the pytest plugin (registered by ``conformance/conftest.py``) that writes
  report.json, report.md and report.html as results arrive, surviving dead workers;
* ``schema``: the report format (``schema.json``) and the one validating loader;
* ``render``: Markdown and self-contained HTML from a report;
* ``compare``, ``replay``: ``python -m reports compare|replay|render|validate``.
"""
