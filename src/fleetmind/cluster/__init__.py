"""Layer 3: job specs, the embedded single-node orchestrator/registry, and the client that talks to either.

``jobspec`` turns ``jobs/<name>.nomad.hcl`` into Nomad's API JSON (``constraints`` holds Nomad's placement
operators and checks one against a node's facts), ``client`` speaks Nomad's and Consul's
HTTP APIs through python-nomad and py-consul, and ``embedded`` serves the subset of those APIs fleetmind
uses from one process that runs the same jobs as local processes (it is a single-node engine; more machines
means real Nomad/Consul).

Exceptions (all in :mod:`fleetmind.cluster.errors`, re-exported by ``client``)::

    ClusterError (RuntimeError)
      +-- JobSpecError (ValueError too)   a job file that does not parse or validate
      +-- RegistryUnavailable             the registry (Consul or embedded) cannot be reached
      +-- OrchestratorUnavailable         the orchestrator (Nomad or embedded) cannot be reached
      +-- JobNotFound (LookupError too)   the orchestrator knows no job with that ID
      +-- JobRejected (ValueError too)    the orchestrator refused a job or request (HTTP 400)
"""
