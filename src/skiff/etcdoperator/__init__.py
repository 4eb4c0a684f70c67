"""The etcd operator: EtcdCluster, EtcdBackup and EtcdRestore over real etcd members that are pods."""
