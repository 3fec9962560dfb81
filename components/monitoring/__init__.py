"""Alarms for every failure that would otherwise be silent, the dashboards, and the alert
topic they notify. See README.md in this folder.

`watch` and `settings` are plain (importable without declaring anything); the component
and the topic builder load on first use.
"""
