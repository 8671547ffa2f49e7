"""fleetmind: one self-hosted AI agent on a pile of old computers.

The package is split by the layers of ../shared/DESIGN.md: ``llm`` (llama.cpp binaries and models), ``cluster``
(job specs, the embedded orchestrator/registry and the Nomad/Consul client), ``agent`` (the pipecat pipeline and
TwinService), ``web`` (Mission Control), ``gateway`` (the OpenAI-compatible API), ``security`` (API keys) and
``cli`` (the ``fleetmind`` command).
"""

__version__ = "0.1.0"
