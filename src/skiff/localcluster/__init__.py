"""``skiff up``'s machinery: the address plan of one local cluster and the supervisor of its processes."""
