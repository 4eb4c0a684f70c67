"""The pieces of ``bench/store_bench.py``: targets, workloads, etcdctl check perf, profiling, report.

A plain package next to the script (``python bench/store_bench.py`` puts
``bench/`` on ``sys.path``), not part of the installed ``skiff`` package:
benchmarks print figures and never assert timings.
"""
