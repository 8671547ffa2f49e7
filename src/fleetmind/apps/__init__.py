"""Composition roots: each process of the stack is built in one place from the layers below.

:mod:`fleetmind.apps.agent_process` builds the agent process: the runtime, the tools and approvals, the event hub,
and one HTTP app on which the agent's own routes (:mod:`fleetmind.agent.server`), Mission Control's
(:mod:`fleetmind.mission_control`) and the voice page (:mod:`fleetmind.voice.web`) sit side by side.
"""
