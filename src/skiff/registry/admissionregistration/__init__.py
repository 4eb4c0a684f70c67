"""Strategies of ``admissionregistration.k8s.io``."""
