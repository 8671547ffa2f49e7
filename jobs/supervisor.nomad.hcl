# The self-healing supervisor (`python -m fleetmind.supervisor`): watches every job through the Nomad and Consul
# APIs, diagnoses a failure, applies one allowlisted action (rules first, the LLM for the rest), audits it.
# Run on a cluster:  nomad job run -var nomad_token=... -var consul_token=... jobs/supervisor.nomad.hcl
# `fleetmind up` runs the same file on the embedded orchestrator. It serves only GET /health (its loop is alive).

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the supervisor may be placed in."
}

variable "python" {
  type        = string
  default     = "/opt/fleetmind/venv/bin/python"
  description = "Python interpreter of the fleetmind installation on the node."
}

variable "state_dir" {
  type        = string
  default     = "/var/lib/fleetmind"
  description = "Where the audit, the adaptation cases and the kept reflection variant live (FLEETMIND_STATE_DIR)."
}

variable "logs_dir" {
  type        = string
  default     = ""
  description = "Folder of the tasks' log files when they are on this node (embedded mode); empty: <state_dir>/logs."
}

variable "consul_addr" {
  type        = string
  default     = "127.0.0.1:8500"
  description = "Consul (or embedded registry) HTTP address, host:port (CONSUL_HTTP_ADDR)."
}

variable "nomad_addr" {
  type        = string
  default     = "http://127.0.0.1:4646"
  description = "Nomad (or embedded orchestrator) HTTP address (NOMAD_ADDR)."
}

variable "nomad_token" {
  type        = string
  default     = ""
  description = "ACL token for the Nomad API (NOMAD_TOKEN): it reads jobs and allocations and registers, reverts and stops them."
}

variable "consul_token" {
  type        = string
  default     = ""
  description = "ACL token for the Consul API (CONSUL_HTTP_TOKEN): it reads service health."
}

variable "events_url" {
  type        = string
  default     = ""
  description = "Mission Control's POST /api/events: the audit's entries become events there ('' = none)."
}

variable "service_secret" {
  type        = string
  default     = ""
  description = "The stack's service secret (FLEETMIND_SERVICE_SECRET): the key of the expert llama-servers it reflects with."
}

variable "fallback_model" {
  type        = string
  default     = ""
  description = "A light GGUF a job whose model file is missing falls back to; empty: only the job's own fallback meta."
}

variable "host" {
  type        = string
  default     = "127.0.0.1"
  description = "Address the supervisor's health endpoint binds."
}

variable "interval" {
  type        = number
  default     = 2
  description = "Seconds between two looks at the cluster."
}

job "supervisor" {
  datacenters = var.datacenters
  type        = "service"

  group "supervisor" {
    count = 1

    network {
      port "health" {}
    }

    restart {
      attempts = 3
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    service {
      name     = "supervisor"
      port     = "health"
      provider = "consul"
      tags     = ["supervisor"]

      # 503 when the loop has not looked at the cluster for a while: a stuck supervisor is restarted.
      check {
        name     = "supervisor loop alive"
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit           = 3
          grace           = "30s"
          ignore_warnings = false
        }
      }
    }

    task "supervisor" {
      driver = "raw_exec"

      config {
        command = var.python
        args    = ["-m", "fleetmind.supervisor", "--health-host", var.host, "--health-port", "${NOMAD_PORT_health}"]
      }

      env {
        FLEETMIND_STATE_DIR                 = var.state_dir
        FLEETMIND_SUPERVISOR_LOGS_DIR       = var.logs_dir
        FLEETMIND_SUPERVISOR_FALLBACK_MODEL = var.fallback_model
        FLEETMIND_SUPERVISOR_INTERVAL_S     = "${var.interval}"
        FLEETMIND_SUPERVISOR_EVENTS_URL     = var.events_url
        CONSUL_HTTP_ADDR                    = var.consul_addr
        NOMAD_ADDR                          = var.nomad_addr
        NOMAD_TOKEN                         = var.nomad_token
        CONSUL_HTTP_TOKEN                   = var.consul_token
        FLEETMIND_SERVICE_SECRET            = var.service_secret
      }

      resources {
        cpu    = 200
        memory = 256
      }

      kill_timeout = "5s"
    }
  }
}
