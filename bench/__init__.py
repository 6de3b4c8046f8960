"""Benchmarks of ``make bench`` (docs/performance.md): each server next to a bare baseline, in one run.

``python -m bench.run`` starts everything on 127.0.0.1, measures, prints a table and writes
``bench/results.json``. Nothing here asserts a timing: the numbers are reported, not checked.
"""
