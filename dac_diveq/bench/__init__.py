"""Benchmarks and checks whose logic the ``scripts/bench_*.py`` entry points bind to a command line.

A consumer of the other packages (the core, the codec's DAC layers): nothing in the package imports it.
"""
