# The OpenAI-compatible gateway (`python -m fleetmind.gateway`): API keys, /v1/*, into the agent and back.
# Job ID "moe_gateway" (like the file name; valid in Nomad); the service it registers is "moe-gateway".

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the gateway may be placed in."
}

variable "python" {
  type        = string
  default     = "/opt/fleetmind/venv/bin/python"
  description = "Python interpreter of the fleetmind installation on the node."
}

variable "port" {
  type        = number
  default     = 8080
  description = "Static port of the OpenAI-compatible API."
}

variable "host" {
  type        = string
  default     = "0.0.0.0"
  description = "Address the gateway binds; 127.0.0.1 keeps it on one box."
}

variable "state_dir" {
  type        = string
  default     = "/var/lib/fleetmind"
  description = "Where the gateway finds API keys and writes logs (FLEETMIND_STATE_DIR)."
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
  description = "ACL token for the Nomad API (NOMAD_TOKEN); `fleetmind up` passes the embedded cluster's token."
}

variable "consul_token" {
  type        = string
  default     = ""
  description = "ACL token for the Consul API (CONSUL_HTTP_TOKEN); `fleetmind up` passes the embedded cluster's token."
}

variable "service_secret" {
  type        = string
  default     = ""
  description = "The stack's service secret (FLEETMIND_SERVICE_SECRET): the gateway reaches the agent with it instead of the caller's key; `fleetmind up` passes the state dir's service.secret."
}

job "moe_gateway" {
  datacenters = var.datacenters
  type        = "service"

  group "gateway" {
    count = 1

    network {
      port "http" {
        static = var.port
      }
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
      name     = "moe-gateway"
      port     = "http"
      provider = "consul"
      tags     = ["gateway"]

      check {
        name     = "gateway health"
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"

        check_restart {
          limit           = 3
          grace           = "30s"
          ignore_warnings = false
        }
      }
    }

    task "gateway" {
      driver = "raw_exec"

      config {
        command = var.python
        args    = ["-m", "fleetmind.gateway", "--host", var.host, "--port", "${NOMAD_PORT_http}"]
      }

      env {
        FLEETMIND_STATE_DIR      = var.state_dir
        CONSUL_HTTP_ADDR         = var.consul_addr
        NOMAD_ADDR               = var.nomad_addr
        NOMAD_TOKEN              = var.nomad_token
        CONSUL_HTTP_TOKEN        = var.consul_token
        HF_HUB_OFFLINE           = "1"
        FLEETMIND_SERVICE_SECRET = var.service_secret
      }

      resources {
        cpu    = 500
        memory = 256
      }

      kill_timeout = "5s"
    }
  }
}
