"""The scheduling framework: kube-scheduler's phases, batched across nodes.

QueueSort orders pending pods; Filter removes nodes a pod cannot use; Score and
NormalizeScore rate the rest; Arbitrate decides, across a whole batch, which pod gets
which node (this is where contention between namespaces is settled); Reserve assumes the
placement in the snapshot and Unreserve takes it back; Bind is the driver's job (the
simulator starts the job, the operator posts a Binding). Results cross phase boundaries as
:class:`Status` values, never as exceptions.
"""
