"""The HTTP face of the embedded cluster: FastAPI apps for the subset of Nomad's and Consul's APIs fleetmind
uses.

:func:`create_nomad_app` answers python-nomad and :func:`create_consul_app` answers py-consul with the same
paths, bodies, status codes and index headers as the real agents, so the one client in
:mod:`fleetmind.cluster.client` works against either. Each API lives in its own module (``nomad_api``,
``consul_api``); both support blocking queries (``?index=N&wait=5s``).
"""

from __future__ import annotations

from fleetmind.cluster.embedded.consul_api import create_consul_app
from fleetmind.cluster.embedded.nomad_api import create_nomad_app

__all__ = ["create_consul_app", "create_nomad_app"]
