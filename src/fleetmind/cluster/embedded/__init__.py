"""The embedded single-node cluster: an orchestrator that runs Nomad job JSON as local processes and a
registry with Consul's services, checks and KV, both behind the HTTP API subsets fleetmind's client uses.

``EmbeddedCluster`` (``server``) ties them together;
``orchestrator``/``allocation``/``task_runner``/``process`` run jobs, ``registry``/``checks`` keep services
healthy-or-not, ``nomad_api``/``consul_api`` serve them. It is a single-node engine by design: more machines
means real Nomad and Consul, driven by the same client. Errors surface as
:class:`fleetmind.cluster.errors.ClusterError` (see the package docstring).
"""

from fleetmind.cluster.embedded.orchestrator import Orchestrator
from fleetmind.cluster.embedded.registry import Registry
from fleetmind.cluster.embedded.server import EmbeddedCluster

__all__ = ["EmbeddedCluster", "Orchestrator", "Registry"]
