"""Serving CustomResourceDefinitions at run time.

``establisher.CrdEstablisher`` watches CRDs through their registry and turns
each into served rows (``ServedResources``) with one registry per version
(``versioned.VersionedRegistry`` over a shared watch cache), writes the
CRD's status (``naming``: accepted names and conditions), and runs the
``customresourcecleanup.apiextensions.k8s.io`` finalizer.
``crd_registry.CrdRegistry`` is the CRD resource's own registry: deletion
adds that finalizer first, as upstream's CRD REST does.
"""
