"""Strategies of ``apiextensions.k8s.io``."""
