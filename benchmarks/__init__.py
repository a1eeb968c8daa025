"""Benchmarks: ``python -m benchmarks NAME`` prints a table; nothing here asserts timings."""
