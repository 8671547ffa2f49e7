"""The ground every layer stands on: the agent's wire protocol, the shared names and the error codes.

Nothing here imports anything of fleetmind's; every layer imports these from here, so a name is spelled once.
"""
