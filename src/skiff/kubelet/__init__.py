"""The kubelet: registers a Node and runs the pods bound to it as supervised process groups."""
