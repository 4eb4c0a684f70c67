"""The message table for decoding Kubernetes protobuf bodies: field number → JSON name and kind.

Field numbers and names are facts from upstream's ``generated.proto`` files
(k8s.io/api core/v1, apps/v1, batch/v1, certificates/v1, rbac/v1, policy/v1, scheduling/v1,
networking/v1, coordination/v1, authorization/v1, authentication/v1 and
k8s.io/apimachinery meta/v1, util/intstr, api/resource, runtime).  Upstream never
renumbers a field, so the table only ever grows.

Each message is one line of ``"<number> <jsonName> <type>"`` entries, comma
separated.  ``<type>`` is one of

* ``s`` string, ``i32`` int32, ``i64`` int64, ``b`` bool, ``bytes`` (base64 in JSON);
* a message name: this table's, or a special one the decoder converts itself
  (``Time``, ``MicroTime``, ``IntOrString``, ``Quantity``, ``ExtraValue``);
* ``[]T`` repeated, ``map[T]`` a ``map<string, T>``;
* ``*T`` a scalar whose zero value is still emitted when it is on the wire: Go
  pointers (``replicas``, ``immutable``, ``holderIdentity``) and fields without
  ``omitempty`` (``ServicePort.port``, ``PriorityClass.value``).  Plain scalars
  follow Go's ``omitempty``: gogo-protobuf writes every non-pointer field, so a
  zero there means "unset";
* ``...M`` an embedded message whose fields Go inlines into the parent's JSON
  (``json:",inline"``: ``Volume.volumeSource``, ``Probe.handler``, the
  ``LocalObjectReference`` in key selectors, ...).

JSON names are the Go json tags, which equal the proto names except where noted
(``BoundObjectReference.uid`` is ``uID`` in the proto).  Status messages are not
listed (a request body's status is ignored by the server, and an unknown field
is skipped, never an error), except where a subresource writes them (a CSR's
``/approval``).  ``ObjectMeta.managedFields`` is skipped the same way
(servers recompute it).

``KINDS`` maps (apiVersion, kind) to the top-level message; a kind missing
there is answered 415 by the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["string", "int32", "int64", "bool", "bytes", "message", "inline", "map"]

SCALARS: dict[str, Kind] = {"s": "string", "i32": "int32", "i64": "int64", "b": "bool", "bytes": "bytes"}

# Messages the decoder converts by hand rather than field by field.
SPECIAL = frozenset({"Time", "MicroTime", "IntOrString", "Quantity", "ExtraValue"})


@dataclass(frozen=True, slots=True)
class Field:
    """One field: ``kind`` is the wire shape; ``target`` names the message (or the map's value type)."""

    number: int
    name: str
    kind: Kind
    target: str = ""
    repeated: bool = False
    keep_zero: bool = False


_META = {
    "ObjectMeta": "1 name s, 2 generateName s, 3 namespace s, 4 selfLink s, 5 uid s, 6 resourceVersion s,"
    " 7 generation i64, 8 creationTimestamp Time, 9 deletionTimestamp Time, 10 deletionGracePeriodSeconds *i64,"
    " 11 labels map[s], 12 annotations map[s], 13 ownerReferences []OwnerReference, 14 finalizers []s",
    "OwnerReference": "5 apiVersion *s, 1 kind *s, 3 name *s, 4 uid *s, 6 controller *b, 7 blockOwnerDeletion *b",
    "LabelSelector": "1 matchLabels map[s], 2 matchExpressions []LabelSelectorRequirement",
    "LabelSelectorRequirement": "1 key s, 2 operator s, 3 values []s",
    "FieldSelectorRequirement": "1 key s, 2 operator s, 3 values []s",
    "DeleteOptions": "1 gracePeriodSeconds *i64, 2 preconditions Preconditions, 3 orphanDependents *b,"
    " 4 propagationPolicy *s, 5 dryRun []s, 6 ignoreStoreReadErrorWithClusterBreakingPotential *b",
    "Preconditions": "1 uid *s, 2 resourceVersion *s",
}

_CORE = {
    "Namespace": "1 metadata ObjectMeta, 2 spec NamespaceSpec",
    "NamespaceSpec": "1 finalizers []s",
    "ConfigMap": "1 metadata ObjectMeta, 4 immutable *b, 2 data map[s], 3 binaryData map[bytes]",
    "Secret": "1 metadata ObjectMeta, 5 immutable *b, 2 data map[bytes], 4 stringData map[s], 3 type s",
    "ServiceAccount": "1 metadata ObjectMeta, 2 secrets []ObjectReference,"
    " 3 imagePullSecrets []LocalObjectReference, 4 automountServiceAccountToken *b",
    "ObjectReference": "1 kind s, 2 namespace s, 3 name s, 4 uid s, 5 apiVersion s, 6 resourceVersion s, 7 fieldPath s",
    "LocalObjectReference": "1 name s",
    "TypedLocalObjectReference": "1 apiGroup *s, 2 kind s, 3 name s",
    "TypedObjectReference": "1 apiGroup *s, 2 kind s, 3 name s, 4 namespace *s",
    "ResourceQuota": "1 metadata ObjectMeta, 2 spec ResourceQuotaSpec",
    "ResourceQuotaSpec": "1 hard map[Quantity], 2 scopes []s, 3 scopeSelector ScopeSelector",
    "ScopeSelector": "1 matchExpressions []ScopedResourceSelectorRequirement",
    "ScopedResourceSelectorRequirement": "1 scopeName s, 2 operator s, 3 values []s",
    "LimitRange": "1 metadata ObjectMeta, 2 spec LimitRangeSpec",
    "LimitRangeSpec": "1 limits []LimitRangeItem",
    "LimitRangeItem": "1 type s, 2 max map[Quantity], 3 min map[Quantity], 4 default map[Quantity],"
    " 5 defaultRequest map[Quantity], 6 maxLimitRequestRatio map[Quantity]",
    "Service": "1 metadata ObjectMeta, 2 spec ServiceSpec",
    "ServiceSpec": "1 ports []ServicePort, 2 selector map[s], 3 clusterIP s, 18 clusterIPs []s, 4 type s,"
    " 5 externalIPs []s, 7 sessionAffinity s, 8 loadBalancerIP s, 9 loadBalancerSourceRanges []s,"
    " 10 externalName s, 11 externalTrafficPolicy s, 12 healthCheckNodePort i32, 13 publishNotReadyAddresses b,"
    " 14 sessionAffinityConfig SessionAffinityConfig, 19 ipFamilies []s, 17 ipFamilyPolicy *s,"
    " 20 allocateLoadBalancerNodePorts *b, 21 loadBalancerClass *s, 22 internalTrafficPolicy *s,"
    " 23 trafficDistribution *s",
    "ServicePort": "1 name s, 2 protocol s, 6 appProtocol *s, 3 port *i32, 4 targetPort IntOrString, 5 nodePort i32",
    "SessionAffinityConfig": "1 clientIP ClientIPConfig",
    "ClientIPConfig": "1 timeoutSeconds *i32",
    "Event": "1 metadata ObjectMeta, 2 involvedObject ObjectReference, 3 reason s, 4 message s,"
    " 5 source EventSource, 6 firstTimestamp Time, 7 lastTimestamp Time, 8 count i32, 9 type s,"
    " 10 eventTime MicroTime, 11 series EventSeries, 12 action s, 13 related ObjectReference,"
    " 14 reportingComponent *s, 15 reportingInstance *s",
    "EventSource": "1 component s, 2 host s",
    "EventSeries": "1 count i32, 2 lastObservedTime MicroTime",
    "PersistentVolumeClaim": "1 metadata ObjectMeta, 2 spec PersistentVolumeClaimSpec",
    "PersistentVolumeClaimTemplate": "1 metadata ObjectMeta, 2 spec PersistentVolumeClaimSpec",
    "PersistentVolumeClaimSpec": "1 accessModes []s, 4 selector LabelSelector, 2 resources VolumeResourceRequirements,"
    " 3 volumeName s, 5 storageClassName *s, 6 volumeMode *s, 7 dataSource TypedLocalObjectReference,"
    " 8 dataSourceRef TypedObjectReference, 9 volumeAttributesClassName *s",
    "VolumeResourceRequirements": "1 limits map[Quantity], 2 requests map[Quantity]",
}

_POD = {
    "Pod": "1 metadata ObjectMeta, 2 spec PodSpec",
    "PodTemplate": "1 metadata ObjectMeta, 2 template PodTemplateSpec",
    "PodTemplateSpec": "1 metadata ObjectMeta, 2 spec PodSpec",
    "ReplicationController": "1 metadata ObjectMeta, 2 spec ReplicationControllerSpec",
    "ReplicationControllerSpec": "1 replicas *i32, 4 minReadySeconds i32, 2 selector map[s],"
    " 3 template PodTemplateSpec",
    "PodSpec": "1 volumes []Volume, 20 initContainers []Container, 2 containers []Container,"
    " 34 ephemeralContainers []EphemeralContainer, 3 restartPolicy s, 4 terminationGracePeriodSeconds *i64,"
    " 5 activeDeadlineSeconds *i64, 6 dnsPolicy s, 7 nodeSelector map[s], 8 serviceAccountName s,"
    " 9 serviceAccount s, 21 automountServiceAccountToken *b, 10 nodeName s, 11 hostNetwork b, 12 hostPID b,"
    " 13 hostIPC b, 27 shareProcessNamespace *b, 14 securityContext PodSecurityContext,"
    " 15 imagePullSecrets []LocalObjectReference, 16 hostname s, 17 subdomain s, 18 affinity Affinity,"
    " 19 schedulerName s, 22 tolerations []Toleration, 23 hostAliases []HostAlias, 24 priorityClassName s,"
    " 25 priority *i32, 26 dnsConfig PodDNSConfig, 28 readinessGates []PodReadinessGate,"
    " 29 runtimeClassName *s, 30 enableServiceLinks *b, 31 preemptionPolicy *s, 32 overhead map[Quantity],"
    " 33 topologySpreadConstraints []TopologySpreadConstraint, 35 setHostnameAsFQDN *b, 36 os PodOS,"
    " 37 hostUsers *b, 38 schedulingGates []PodSchedulingGate, 39 resourceClaims []PodResourceClaim,"
    " 40 resources ResourceRequirements, 41 hostnameOverride *s",
    # EphemeralContainerCommon repeats Container's field numbers exactly, so it is decoded as one.
    "EphemeralContainer": "1 ephemeralContainerCommon ...Container, 2 targetContainerName s",
    "Container": "1 name s, 2 image s, 3 command []s, 4 args []s, 5 workingDir s, 6 ports []ContainerPort,"
    " 19 envFrom []EnvFromSource, 7 env []EnvVar, 8 resources ResourceRequirements,"
    " 23 resizePolicy []ContainerResizePolicy, 24 restartPolicy *s, 25 restartPolicyRules []ContainerRestartRule,"
    " 9 volumeMounts []VolumeMount, 21 volumeDevices []VolumeDevice, 10 livenessProbe Probe,"
    " 11 readinessProbe Probe, 22 startupProbe Probe, 12 lifecycle Lifecycle, 13 terminationMessagePath s,"
    " 20 terminationMessagePolicy s, 14 imagePullPolicy s, 15 securityContext SecurityContext, 16 stdin b,"
    " 17 stdinOnce b, 18 tty b",
    "ContainerPort": "1 name s, 2 hostPort i32, 3 containerPort *i32, 4 protocol s, 5 hostIP s",
    "ContainerResizePolicy": "1 resourceName s, 2 restartPolicy s",
    "ContainerRestartRule": "1 action s, 2 exitCodes ContainerRestartRuleOnExitCodes",
    "ContainerRestartRuleOnExitCodes": "1 operator s, 2 values []i32",
    "EnvFromSource": "1 prefix s, 2 configMapRef ConfigMapEnvSource, 3 secretRef SecretEnvSource",
    "ConfigMapEnvSource": "1 localObjectReference ...LocalObjectReference, 2 optional *b",
    "SecretEnvSource": "1 localObjectReference ...LocalObjectReference, 2 optional *b",
    "EnvVar": "1 name s, 2 value s, 3 valueFrom EnvVarSource",
    "EnvVarSource": "1 fieldRef ObjectFieldSelector, 2 resourceFieldRef ResourceFieldSelector,"
    " 3 configMapKeyRef ConfigMapKeySelector, 4 secretKeyRef SecretKeySelector, 5 fileKeyRef FileKeySelector",
    "ObjectFieldSelector": "1 apiVersion s, 2 fieldPath s",
    "ResourceFieldSelector": "1 containerName s, 2 resource s, 3 divisor Quantity",
    "ConfigMapKeySelector": "1 localObjectReference ...LocalObjectReference, 2 key s, 3 optional *b",
    "SecretKeySelector": "1 localObjectReference ...LocalObjectReference, 2 key s, 3 optional *b",
    "FileKeySelector": "1 volumeName s, 2 path s, 3 key s, 4 optional *b",
    "ResourceRequirements": "1 limits map[Quantity], 2 requests map[Quantity], 3 claims []ResourceClaim",
    "ResourceClaim": "1 name s, 2 request s",
    "VolumeMount": "1 name s, 2 readOnly b, 7 recursiveReadOnly *s, 3 mountPath s, 4 subPath s,"
    " 5 mountPropagation *s, 6 subPathExpr s",
    "VolumeDevice": "1 name s, 2 devicePath s",
    "Probe": "1 handler ...ProbeHandler, 2 initialDelaySeconds i32, 3 timeoutSeconds i32, 4 periodSeconds i32,"
    " 5 successThreshold i32, 6 failureThreshold i32, 7 terminationGracePeriodSeconds *i64",
    "ProbeHandler": "1 exec ExecAction, 2 httpGet HTTPGetAction, 3 tcpSocket TCPSocketAction, 4 grpc GRPCAction",
    "ExecAction": "1 command []s",
    "HTTPGetAction": "1 path s, 2 port IntOrString, 3 host s, 4 scheme s, 5 httpHeaders []HTTPHeader",
    "HTTPHeader": "1 name s, 2 value *s",
    "TCPSocketAction": "1 port IntOrString, 2 host s",
    "GRPCAction": "1 port *i32, 2 service *s",
    "Lifecycle": "1 postStart LifecycleHandler, 2 preStop LifecycleHandler, 3 stopSignal *s",
    "LifecycleHandler": "1 exec ExecAction, 2 httpGet HTTPGetAction, 3 tcpSocket TCPSocketAction, 4 sleep SleepAction",
    "SleepAction": "1 seconds *i64",
    "SecurityContext": "1 capabilities Capabilities, 2 privileged *b, 3 seLinuxOptions SELinuxOptions,"
    " 10 windowsOptions WindowsSecurityContextOptions, 4 runAsUser *i64, 8 runAsGroup *i64, 5 runAsNonRoot *b,"
    " 6 readOnlyRootFilesystem *b, 7 allowPrivilegeEscalation *b, 9 procMount *s,"
    " 11 seccompProfile SeccompProfile, 12 appArmorProfile AppArmorProfile",
    "Capabilities": "1 add []s, 2 drop []s",
    "SELinuxOptions": "1 user s, 2 role s, 3 type s, 4 level s",
    "WindowsSecurityContextOptions": "1 gmsaCredentialSpecName *s, 2 gmsaCredentialSpec *s,"
    " 3 runAsUserName *s, 4 hostProcess *b",
    "SeccompProfile": "1 type s, 2 localhostProfile *s",
    "AppArmorProfile": "1 type s, 2 localhostProfile *s",
    "PodSecurityContext": "1 seLinuxOptions SELinuxOptions, 8 windowsOptions WindowsSecurityContextOptions,"
    " 2 runAsUser *i64, 6 runAsGroup *i64, 3 runAsNonRoot *b, 4 supplementalGroups []i64,"
    " 12 supplementalGroupsPolicy *s, 5 fsGroup *i64, 7 sysctls []Sysctl, 9 fsGroupChangePolicy *s,"
    " 10 seccompProfile SeccompProfile, 11 appArmorProfile AppArmorProfile, 13 seLinuxChangePolicy *s",
    "Sysctl": "1 name s, 2 value s",
    "Affinity": "1 nodeAffinity NodeAffinity, 2 podAffinity PodAffinity, 3 podAntiAffinity PodAntiAffinity",
    "NodeAffinity": "1 requiredDuringSchedulingIgnoredDuringExecution NodeSelector,"
    " 2 preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm",
    "NodeSelector": "1 nodeSelectorTerms []NodeSelectorTerm",
    "NodeSelectorTerm": "1 matchExpressions []NodeSelectorRequirement, 2 matchFields []NodeSelectorRequirement",
    "NodeSelectorRequirement": "1 key s, 2 operator s, 3 values []s",
    "PreferredSchedulingTerm": "1 weight *i32, 2 preference NodeSelectorTerm",
    "PodAffinity": "1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm,"
    " 2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm",
    "PodAntiAffinity": "1 requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm,"
    " 2 preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm",
    "PodAffinityTerm": "1 labelSelector LabelSelector, 2 namespaces []s, 3 topologyKey s,"
    " 4 namespaceSelector LabelSelector, 5 matchLabelKeys []s, 6 mismatchLabelKeys []s",
    "WeightedPodAffinityTerm": "1 weight *i32, 2 podAffinityTerm PodAffinityTerm",
    "Toleration": "1 key s, 2 operator s, 3 value s, 4 effect s, 5 tolerationSeconds *i64",
    "HostAlias": "1 ip s, 2 hostnames []s",
    "PodDNSConfig": "1 nameservers []s, 2 searches []s, 3 options []PodDNSConfigOption",
    "PodDNSConfigOption": "1 name s, 2 value *s",
    "PodReadinessGate": "1 conditionType s",
    "TopologySpreadConstraint": "1 maxSkew *i32, 2 topologyKey s, 3 whenUnsatisfiable s,"
    " 4 labelSelector LabelSelector, 5 minDomains *i32, 6 nodeAffinityPolicy *s, 7 nodeTaintsPolicy *s,"
    " 8 matchLabelKeys []s",
    "PodOS": "1 name s",
    "PodSchedulingGate": "1 name s",
    "PodResourceClaim": "1 name s, 3 resourceClaimName *s, 4 resourceClaimTemplateName *s",
}

_VOLUMES = {
    "Volume": "1 name s, 2 volumeSource ...VolumeSource",
    "VolumeSource": "1 hostPath HostPathVolumeSource, 2 emptyDir EmptyDirVolumeSource,"
    " 3 gcePersistentDisk GCEPersistentDiskVolumeSource, 4 awsElasticBlockStore AWSElasticBlockStoreVolumeSource,"
    " 5 gitRepo GitRepoVolumeSource, 6 secret SecretVolumeSource, 7 nfs NFSVolumeSource,"
    " 8 iscsi ISCSIVolumeSource, 9 glusterfs GlusterfsVolumeSource,"
    " 10 persistentVolumeClaim PersistentVolumeClaimVolumeSource, 11 rbd RBDVolumeSource,"
    " 12 flexVolume FlexVolumeSource, 13 cinder CinderVolumeSource, 14 cephfs CephFSVolumeSource,"
    " 15 flocker FlockerVolumeSource, 16 downwardAPI DownwardAPIVolumeSource, 17 fc FCVolumeSource,"
    " 18 azureFile AzureFileVolumeSource, 19 configMap ConfigMapVolumeSource,"
    " 20 vsphereVolume VsphereVirtualDiskVolumeSource, 21 quobyte QuobyteVolumeSource,"
    " 22 azureDisk AzureDiskVolumeSource, 23 photonPersistentDisk PhotonPersistentDiskVolumeSource,"
    " 26 projected ProjectedVolumeSource, 24 portworxVolume PortworxVolumeSource, 25 scaleIO ScaleIOVolumeSource,"
    " 27 storageos StorageOSVolumeSource, 28 csi CSIVolumeSource, 29 ephemeral EphemeralVolumeSource,"
    " 30 image ImageVolumeSource",
    "HostPathVolumeSource": "1 path s, 2 type *s",
    "EmptyDirVolumeSource": "1 medium s, 2 sizeLimit Quantity",
    "GitRepoVolumeSource": "1 repository s, 2 revision s, 3 directory s",
    "SecretVolumeSource": "1 secretName s, 2 items []KeyToPath, 3 defaultMode *i32, 4 optional *b",
    "ConfigMapVolumeSource": "1 localObjectReference ...LocalObjectReference, 2 items []KeyToPath,"
    " 3 defaultMode *i32, 4 optional *b",
    "KeyToPath": "1 key s, 2 path s, 3 mode *i32",
    "NFSVolumeSource": "1 server s, 2 path s, 3 readOnly b",
    "PersistentVolumeClaimVolumeSource": "1 claimName s, 2 readOnly b",
    "DownwardAPIVolumeSource": "1 items []DownwardAPIVolumeFile, 2 defaultMode *i32",
    "DownwardAPIVolumeFile": "1 path s, 2 fieldRef ObjectFieldSelector, 3 resourceFieldRef ResourceFieldSelector,"
    " 4 mode *i32",
    "ProjectedVolumeSource": "1 sources []VolumeProjection, 2 defaultMode *i32",
    "VolumeProjection": "1 secret SecretProjection, 2 downwardAPI DownwardAPIProjection,"
    " 3 configMap ConfigMapProjection, 4 serviceAccountToken ServiceAccountTokenProjection,"
    " 5 clusterTrustBundle ClusterTrustBundleProjection, 6 podCertificate PodCertificateProjection",
    "SecretProjection": "1 localObjectReference ...LocalObjectReference, 2 items []KeyToPath, 4 optional *b",
    "ConfigMapProjection": "1 localObjectReference ...LocalObjectReference, 2 items []KeyToPath, 4 optional *b",
    "DownwardAPIProjection": "1 items []DownwardAPIVolumeFile",
    "ServiceAccountTokenProjection": "1 audience s, 2 expirationSeconds *i64, 3 path s",
    "ClusterTrustBundleProjection": "1 name *s, 2 signerName *s, 3 labelSelector LabelSelector, 5 optional *b,"
    " 4 path s",
    "PodCertificateProjection": "1 signerName s, 2 keyType s, 3 maxExpirationSeconds *i32,"
    " 4 credentialBundlePath s, 5 keyPath s, 6 certificateChainPath s, 7 userAnnotations map[s]",
    "CSIVolumeSource": "1 driver s, 2 readOnly *b, 3 fsType *s, 4 volumeAttributes map[s],"
    " 5 nodePublishSecretRef LocalObjectReference",
    "EphemeralVolumeSource": "1 volumeClaimTemplate PersistentVolumeClaimTemplate",
    "ImageVolumeSource": "1 reference s, 2 pullPolicy s",
    # In-tree plugins: listed so a pod naming one keeps it rather than silently becoming an emptyDir.
    "AWSElasticBlockStoreVolumeSource": "1 volumeID s, 2 fsType s, 3 partition i32, 4 readOnly b",
    "GCEPersistentDiskVolumeSource": "1 pdName s, 2 fsType s, 3 partition i32, 4 readOnly b",
    "AzureDiskVolumeSource": "1 diskName s, 2 diskURI s, 3 cachingMode *s, 4 fsType *s, 5 readOnly *b, 6 kind *s",
    "AzureFileVolumeSource": "1 secretName s, 2 shareName s, 3 readOnly b",
    "CephFSVolumeSource": "1 monitors []s, 2 path s, 3 user s, 4 secretFile s, 5 secretRef LocalObjectReference,"
    " 6 readOnly b",
    "CinderVolumeSource": "1 volumeID s, 2 fsType s, 3 readOnly b, 4 secretRef LocalObjectReference",
    "FCVolumeSource": "1 targetWWNs []s, 2 lun *i32, 3 fsType s, 4 readOnly b, 5 wwids []s",
    "FlexVolumeSource": "1 driver s, 2 fsType s, 3 secretRef LocalObjectReference, 4 readOnly b, 5 options map[s]",
    "FlockerVolumeSource": "1 datasetName s, 2 datasetUUID s",
    "GlusterfsVolumeSource": "1 endpoints s, 2 path s, 3 readOnly b",
    "ISCSIVolumeSource": "1 targetPortal s, 2 iqn s, 3 lun i32, 4 iscsiInterface s, 5 fsType s, 6 readOnly b,"
    " 7 portals []s, 8 chapAuthDiscovery b, 11 chapAuthSession b, 10 secretRef LocalObjectReference,"
    " 12 initiatorName *s",
    "PortworxVolumeSource": "1 volumeID s, 2 fsType s, 3 readOnly b",
    "QuobyteVolumeSource": "1 registry s, 2 volume s, 3 readOnly b, 4 user s, 5 group s, 6 tenant s",
    "RBDVolumeSource": "1 monitors []s, 2 image s, 3 fsType s, 4 pool s, 5 user s, 6 keyring s,"
    " 7 secretRef LocalObjectReference, 8 readOnly b",
    "ScaleIOVolumeSource": "1 gateway s, 2 system s, 3 secretRef LocalObjectReference, 4 sslEnabled b,"
    " 5 protectionDomain s, 6 storagePool s, 7 storageMode s, 8 volumeName s, 9 fsType s, 10 readOnly b",
    "StorageOSVolumeSource": "1 volumeName s, 2 volumeNamespace s, 3 fsType s, 4 readOnly b,"
    " 5 secretRef LocalObjectReference",
    "VsphereVirtualDiskVolumeSource": "1 volumePath s, 2 fsType s, 3 storagePolicyName s, 4 storagePolicyID s",
    "PhotonPersistentDiskVolumeSource": "1 pdID s, 2 fsType s",
}

_APPS_BATCH = {
    "Deployment": "1 metadata ObjectMeta, 2 spec DeploymentSpec",
    "DeploymentSpec": "1 replicas *i32, 2 selector LabelSelector, 3 template PodTemplateSpec,"
    " 4 strategy DeploymentStrategy, 5 minReadySeconds i32, 6 revisionHistoryLimit *i32, 7 paused b,"
    " 9 progressDeadlineSeconds *i32, 10 podReplacementPolicy *s",
    "DeploymentStrategy": "1 type s, 2 rollingUpdate RollingUpdateDeployment",
    "RollingUpdateDeployment": "1 maxUnavailable IntOrString, 2 maxSurge IntOrString",
    "ReplicaSet": "1 metadata ObjectMeta, 2 spec ReplicaSetSpec",
    "ReplicaSetSpec": "1 replicas *i32, 4 minReadySeconds i32, 2 selector LabelSelector, 3 template PodTemplateSpec",
    "DaemonSet": "1 metadata ObjectMeta, 2 spec DaemonSetSpec",
    "DaemonSetSpec": "1 selector LabelSelector, 2 template PodTemplateSpec, 3 updateStrategy DaemonSetUpdateStrategy,"
    " 4 minReadySeconds i32, 6 revisionHistoryLimit *i32",
    "DaemonSetUpdateStrategy": "1 type s, 2 rollingUpdate RollingUpdateDaemonSet",
    "RollingUpdateDaemonSet": "1 maxUnavailable IntOrString, 2 maxSurge IntOrString",
    "StatefulSet": "1 metadata ObjectMeta, 2 spec StatefulSetSpec",
    "StatefulSetSpec": "1 replicas *i32, 2 selector LabelSelector, 3 template PodTemplateSpec,"
    " 4 volumeClaimTemplates []PersistentVolumeClaim, 5 serviceName s, 6 podManagementPolicy s,"
    " 7 updateStrategy StatefulSetUpdateStrategy, 8 revisionHistoryLimit *i32, 9 minReadySeconds i32,"
    " 10 persistentVolumeClaimRetentionPolicy StatefulSetPersistentVolumeClaimRetentionPolicy,"
    " 11 ordinals StatefulSetOrdinals",
    "StatefulSetUpdateStrategy": "1 type s, 2 rollingUpdate RollingUpdateStatefulSetStrategy",
    "RollingUpdateStatefulSetStrategy": "1 partition *i32, 2 maxUnavailable IntOrString",
    "StatefulSetPersistentVolumeClaimRetentionPolicy": "1 whenDeleted s, 2 whenScaled s",
    "StatefulSetOrdinals": "1 start i32",
    "Job": "1 metadata ObjectMeta, 2 spec JobSpec",
    "JobSpec": "1 parallelism *i32, 2 completions *i32, 3 activeDeadlineSeconds *i64,"
    " 11 podFailurePolicy PodFailurePolicy, 16 successPolicy SuccessPolicy, 7 backoffLimit *i32,"
    " 12 backoffLimitPerIndex *i32, 13 maxFailedIndexes *i32, 4 selector LabelSelector, 5 manualSelector *b,"
    " 6 template PodTemplateSpec, 8 ttlSecondsAfterFinished *i32, 9 completionMode *s, 10 suspend *b,"
    " 14 podReplacementPolicy *s, 15 managedBy *s",
    "PodFailurePolicy": "1 rules []PodFailurePolicyRule",
    "PodFailurePolicyRule": "1 action s, 2 onExitCodes PodFailurePolicyOnExitCodesRequirement,"
    " 3 onPodConditions []PodFailurePolicyOnPodConditionsPattern",
    "PodFailurePolicyOnExitCodesRequirement": "1 containerName *s, 2 operator s, 3 values []i32",
    "PodFailurePolicyOnPodConditionsPattern": "1 type s, 2 status s",
    "SuccessPolicy": "1 rules []SuccessPolicyRule",
    "SuccessPolicyRule": "1 succeededIndexes *s, 2 succeededCount *i32",
    "CronJob": "1 metadata ObjectMeta, 2 spec CronJobSpec",
    "CronJobSpec": "1 schedule s, 8 timeZone *s, 2 startingDeadlineSeconds *i64, 3 concurrencyPolicy s,"
    " 4 suspend *b, 5 jobTemplate JobTemplateSpec, 6 successfulJobsHistoryLimit *i32,"
    " 7 failedJobsHistoryLimit *i32",
    "JobTemplateSpec": "1 metadata ObjectMeta, 2 spec JobSpec",
}

_OTHER_GROUPS = {
    "Role": "1 metadata ObjectMeta, 2 rules []PolicyRule",
    "ClusterRole": "1 metadata ObjectMeta, 2 rules []PolicyRule, 3 aggregationRule AggregationRule",
    "AggregationRule": "1 clusterRoleSelectors []LabelSelector",
    "PolicyRule": "1 verbs []s, 2 apiGroups []s, 3 resources []s, 4 resourceNames []s, 5 nonResourceURLs []s",
    "RoleBinding": "1 metadata ObjectMeta, 2 subjects []Subject, 3 roleRef RoleRef",
    "ClusterRoleBinding": "1 metadata ObjectMeta, 2 subjects []Subject, 3 roleRef RoleRef",
    "RoleRef": "1 apiGroup *s, 2 kind *s, 3 name *s",
    "Subject": "1 kind *s, 2 apiGroup s, 3 name *s, 4 namespace s",
    "PriorityClass": "1 metadata ObjectMeta, 2 value *i32, 3 globalDefault b, 4 description s, 5 preemptionPolicy *s",
    "PodDisruptionBudget": "1 metadata ObjectMeta, 2 spec PodDisruptionBudgetSpec",
    "PodDisruptionBudgetSpec": "1 minAvailable IntOrString, 2 selector LabelSelector,"
    " 3 maxUnavailable IntOrString, 4 unhealthyPodEvictionPolicy *s",
    "Eviction": "1 metadata ObjectMeta, 2 deleteOptions DeleteOptions",
    "Ingress": "1 metadata ObjectMeta, 2 spec IngressSpec",
    "IngressSpec": "4 ingressClassName *s, 1 defaultBackend IngressBackend, 2 tls []IngressTLS, 3 rules []IngressRule",
    "IngressBackend": "4 service IngressServiceBackend, 3 resource TypedLocalObjectReference",
    "IngressServiceBackend": "1 name s, 2 port ServiceBackendPort",
    "ServiceBackendPort": "1 name s, 2 number i32",
    "IngressTLS": "1 hosts []s, 2 secretName s",
    "IngressRule": "1 host s, 2 ingressRuleValue ...IngressRuleValue",
    "IngressRuleValue": "1 http HTTPIngressRuleValue",
    "HTTPIngressRuleValue": "1 paths []HTTPIngressPath",
    "HTTPIngressPath": "1 path s, 3 pathType *s, 2 backend IngressBackend",
    "Lease": "1 metadata ObjectMeta, 2 spec LeaseSpec",
    "LeaseSpec": "1 holderIdentity *s, 2 leaseDurationSeconds *i32, 3 acquireTime MicroTime, 4 renewTime MicroTime,"
    " 5 leaseTransitions *i32, 6 strategy *s, 7 preferredHolder *s",
    "SelfSubjectAccessReview": "1 metadata ObjectMeta, 2 spec SelfSubjectAccessReviewSpec",
    "SelfSubjectAccessReviewSpec": "1 resourceAttributes ResourceAttributes,"
    " 2 nonResourceAttributes NonResourceAttributes",
    "SubjectAccessReview": "1 metadata ObjectMeta, 2 spec SubjectAccessReviewSpec",
    "LocalSubjectAccessReview": "1 metadata ObjectMeta, 2 spec SubjectAccessReviewSpec",
    "SubjectAccessReviewSpec": "1 resourceAttributes ResourceAttributes, 2 nonResourceAttributes NonResourceAttributes,"
    " 3 user s, 4 groups []s, 5 extra map[ExtraValue], 6 uid s",
    "ResourceAttributes": "1 namespace s, 2 verb s, 3 group s, 4 version s, 5 resource s, 6 subresource s, 7 name s,"
    " 8 fieldSelector FieldSelectorAttributes, 9 labelSelector LabelSelectorAttributes",
    "FieldSelectorAttributes": "1 rawSelector s, 2 requirements []FieldSelectorRequirement",
    "LabelSelectorAttributes": "1 rawSelector s, 2 requirements []LabelSelectorRequirement",
    "NonResourceAttributes": "1 path s, 2 verb s",
    "SelfSubjectRulesReview": "1 metadata ObjectMeta, 2 spec SelfSubjectRulesReviewSpec",
    "SelfSubjectRulesReviewSpec": "1 namespace s",
    "TokenRequest": "1 metadata ObjectMeta, 2 spec TokenRequestSpec",
    "TokenRequestSpec": "1 audiences []s, 4 expirationSeconds *i64, 3 boundObjectRef BoundObjectReference",
    "BoundObjectReference": "1 kind s, 2 apiVersion s, 3 name s, 4 uid s",
    "TokenReview": "1 metadata ObjectMeta, 2 spec TokenReviewSpec",
    "TokenReviewSpec": "1 token s, 2 audiences []s",
    "SelfSubjectReview": "1 metadata ObjectMeta",
    # CSR status is listed: kubectl certificate approve/deny PUT it to /approval as protobuf.
    "CertificateSigningRequest": "1 metadata ObjectMeta, 2 spec CertificateSigningRequestSpec,"
    " 3 status CertificateSigningRequestStatus",
    "CertificateSigningRequestSpec": "1 request bytes, 7 signerName *s, 8 expirationSeconds *i32, 5 usages []s,"
    " 2 username s, 3 uid s, 4 groups []s, 6 extra map[ExtraValue]",
    "CertificateSigningRequestStatus": "1 conditions []CertificateSigningRequestCondition, 2 certificate bytes",
    "CertificateSigningRequestCondition": "1 type *s, 6 status *s, 2 reason s, 3 message s, 4 lastUpdateTime Time,"
    " 5 lastTransitionTime Time",
}

_KIND_NAMES: dict[str, str] = {
    "v1": "Namespace ConfigMap Secret Service ServiceAccount ResourceQuota LimitRange Pod PodTemplate"
    " ReplicationController Event PersistentVolumeClaim",
    "apps/v1": "Deployment ReplicaSet DaemonSet StatefulSet",
    "batch/v1": "Job CronJob",
    "certificates.k8s.io/v1": "CertificateSigningRequest",
    "rbac.authorization.k8s.io/v1": "Role ClusterRole RoleBinding ClusterRoleBinding",
    "scheduling.k8s.io/v1": "PriorityClass",
    "policy/v1": "PodDisruptionBudget Eviction",
    "networking.k8s.io/v1": "Ingress",
    "coordination.k8s.io/v1": "Lease",
    "authorization.k8s.io/v1": "SelfSubjectAccessReview SubjectAccessReview LocalSubjectAccessReview"
    " SelfSubjectRulesReview",
    "authentication.k8s.io/v1": "TokenRequest TokenReview SelfSubjectReview",
}


def _parse_field(entry: str, known: set[str]) -> Field:
    number_text, name, spec = entry.split()
    number = int(number_text)
    if spec.startswith("map[") and spec.endswith("]"):
        value = spec[4:-1]
        if value not in SCALARS and value not in known:
            raise ValueError(f"map value type {value!r} of {name} is not defined")
        return Field(number, name, "map", SCALARS.get(value, value))
    if spec.startswith("..."):
        target = spec[3:]
        if target not in known or target in SPECIAL:
            raise ValueError(f"inline type {target!r} of {name} is not a plain message")
        return Field(number, name, "inline", target)
    repeated = spec.startswith("[]")
    keep_zero = spec.startswith("*")
    base = spec[2:] if repeated else spec[1:] if keep_zero else spec
    if base in SCALARS:
        return Field(number, name, SCALARS[base], repeated=repeated, keep_zero=keep_zero)
    if keep_zero or base not in known:
        raise ValueError(f"type {spec!r} of {name} is not defined")
    return Field(number, name, "message", base, repeated=repeated)


def _build() -> dict[str, dict[int, Field]]:
    source: dict[str, str] = {**_META, **_CORE, **_POD, **_VOLUMES, **_APPS_BATCH, **_OTHER_GROUPS}
    known = set(source) | SPECIAL
    table: dict[str, dict[int, Field]] = {}
    for message, spec in source.items():
        fields = [_parse_field(entry.strip(), known) for entry in spec.split(",")]
        numbers = {f.number: f for f in fields}
        if len(numbers) != len(fields):
            raise ValueError(f"{message} repeats a field number")
        table[message] = numbers
    return table


MESSAGES: dict[str, dict[int, Field]] = _build()

KINDS: dict[tuple[str, str], str] = {
    (api_version, kind): kind for api_version, kinds in _KIND_NAMES.items() for kind in kinds.split()
}
