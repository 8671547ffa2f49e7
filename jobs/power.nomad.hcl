# The power agent (`fleetmind power agent`): wakes nodes by Wake-on-LAN when the queue or latency grows, drains and
# sleeps idle ones (never the control node, never one holding work); every decision an audit line and an event.
# Run on a cluster:  nomad job run -var nomad_token=... -var node_names='^control-1$' jobs/power.nomad.hcl
# It reads the inventory the provisioning API keeps, so it belongs on the control node (node_names). It is not part
# of `fleetmind up`: on one box the only node is the control node, which the agent never drains or sleeps.

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the power agent may be placed in."
}

variable "node_names" {
  type        = string
  default     = ".*"
  description = "Regular expression over the node's name (node.unique.name) that may run the agent: the control node, where the inventory lives."
}

variable "python" {
  type        = string
  default     = "/opt/fleetmind/venv/bin/python"
  description = "Python interpreter of the fleetmind installation on the node."
}

variable "host" {
  type        = string
  default     = "127.0.0.1"
  description = "Address the agent's GET /health binds (only the check reads it)."
}

variable "state_dir" {
  type        = string
  default     = "/var/lib/fleetmind"
  description = "The state dir (FLEETMIND_STATE_DIR): the inventory is <state_dir>/provisioning/inventory.yaml, the audit log <state_dir>/power/audit.jsonl."
}

variable "nomad_addr" {
  type        = string
  default     = "http://127.0.0.1:4646"
  description = "Nomad (or embedded orchestrator) HTTP address (NOMAD_ADDR): nodes, their allocations, drains."
}

variable "nomad_token" {
  type        = string
  default     = ""
  description = "ACL token for the Nomad API (NOMAD_TOKEN); it needs node write to drain."
}

variable "metrics_url" {
  type        = string
  default     = "http://127.0.0.1:8080/metrics"
  description = "The gateway's Prometheus metrics (queue depth, latency) (FLEETMIND_POWER_METRICS_URL); empty: none."
}

variable "events_url" {
  type        = string
  default     = ""
  description = "Mission Control's event intake, e.g. http://127.0.0.1:8000/api/events (FLEETMIND_POWER_EVENTS_URL); empty: audit log only."
}

variable "events_key" {
  type        = string
  default     = ""
  description = "Operator API key for events_url (FLEETMIND_POWER_EVENTS_KEY)."
}

variable "interval" {
  type        = number
  default     = 10
  description = "Seconds between two decisions (FLEETMIND_POWER_INTERVAL_S)."
}

variable "min_awake" {
  type        = number
  default     = 1
  description = "Nodes kept awake whatever the demand (FLEETMIND_POWER_MIN_AWAKE)."
}

variable "schedule" {
  type        = string
  default     = ""
  description = "Minimum nodes awake by time of day, e.g. '08:00-18:00=3,18:00-22:00=2' (FLEETMIND_POWER_SCHEDULE)."
}

job "power" {
  datacenters = var.datacenters
  type        = "service"

  constraint {
    attribute = "${node.unique.name}"
    operator  = "regexp"
    value     = var.node_names
  }

  group "power" {
    count = 1

    network {
      port "http" {}
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    service {
      name     = "fleetmind-power"
      port     = "http"
      provider = "consul"
      tags     = ["power"]

      check {
        name     = "power agent health"
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"

        # /health turns 503 when no decision round has ended for a while (a hung agent)
        check_restart {
          limit           = 3
          grace           = "30s"
          ignore_warnings = false
        }
      }
    }

    task "agent" {
      driver = "raw_exec"

      config {
        command = var.python
        args = [
          "-m", "fleetmind", "power", "agent",
          "--health-host", var.host,
          "--health-port", "${NOMAD_PORT_http}",
        ]
      }

      env {
        FLEETMIND_STATE_DIR         = var.state_dir
        NOMAD_ADDR                  = var.nomad_addr
        NOMAD_TOKEN                 = var.nomad_token
        FLEETMIND_POWER_METRICS_URL = var.metrics_url
        FLEETMIND_POWER_EVENTS_URL  = var.events_url
        FLEETMIND_POWER_EVENTS_KEY  = var.events_key
        FLEETMIND_POWER_INTERVAL_S  = "${var.interval}"
        FLEETMIND_POWER_MIN_AWAKE   = "${var.min_awake}"
        FLEETMIND_POWER_SCHEDULE    = var.schedule
      }

      resources {
        cpu    = 100
        memory = 128
      }

      kill_timeout = "5s"
    }
  }
}
