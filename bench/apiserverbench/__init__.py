"""API server benchmarks (bench/apiserver_bench.py): a real ``skiff apiserver`` process over HTTP(S).

Stats, tables and py-spy summaries come from ``storebench`` (imported, not copied).
"""
