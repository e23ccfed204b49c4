"""Moved: ``run_study`` is in ``studies.runner``; the local and Ray executors, and
``StudySummary``, are in ``studies.workers``. The names stay importable from here."""

from __future__ import annotations

from codefocus.studies.runner import LEGACY_DEFAULTS, RESULT_SETTINGS, run_study
from codefocus.studies.workers import StudySummary

__all__ = ["LEGACY_DEFAULTS", "RESULT_SETTINGS", "StudySummary", "run_study"]
