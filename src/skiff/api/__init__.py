"""Wire-level helpers of the Kubernetes API: Status errors, selectors, patches, protobuf."""
