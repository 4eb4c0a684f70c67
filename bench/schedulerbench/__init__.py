"""Helpers of bench/scheduler_bench.py: the processes under test and the throughput measurement."""
