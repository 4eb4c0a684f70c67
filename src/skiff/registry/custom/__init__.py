"""Custom resources: the Strategy a CustomResourceDefinition version becomes, and its pure parts.

``schema_validation`` (OpenAPI v3 subset with kube-openapi's messages),
``structural`` (pruning, null pruning, defaulting), ``jsonpath`` (the JSONPath
subset printer columns use), ``printer`` (additionalPrinterColumns → Table
columns and cells), ``strategy`` (``CustomResourceStrategy``) and
``definition`` (a CRD object → the ``ResourceInfo`` rows it serves).
"""
