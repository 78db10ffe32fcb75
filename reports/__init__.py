"""Report tooling for conformance runs.

The JSON/Markdown/HTML reports and the baseline compare are the subject of a later issue.
Until then a run's machine-readable result is pytest's own: ``--junitxml=PATH`` records
every property x device x parameter with its outcome (known deviations show as skipped
xfails with their reason).
"""
