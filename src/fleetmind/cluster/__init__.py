"""Layer 3: job specs, the embedded single-node orchestrator/registry, and the client that talks to either.

Exceptions::

    ClusterError (RuntimeError)
      +-- JobSpecError (ValueError too)   a job file that does not parse or validate
      +-- RegistryUnavailable             the registry (Consul or embedded) cannot be reached
"""
