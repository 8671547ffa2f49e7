"""``python -m fleetmind.provisioning ...``: the ``fleetmind provision`` commands, runnable on their own."""

from fleetmind.provisioning.cli import app

if __name__ == "__main__":
    app(prog_name="fleetmind provision")
