"""The provisioning API's routes, one module per resource: call-home, status and retry, health and metrics."""
