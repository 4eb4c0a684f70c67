"""The Skiff scheduler: binds pending pods to nodes (kube-scheduler's behaviour, Python-sized).

``queue`` holds pods waiting for a scheduling attempt, ``cache`` the per-node view
(NodeInfo) built from informers plus assumed pods, ``framework`` runs the filter
and score plugins of ``filters``/``scores``/``interpod``/``spread`` over that view,
and ``scheduler`` wires them to the API through skiff.client.
"""
