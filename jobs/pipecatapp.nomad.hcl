# The agent: the pipecat pipeline (TwinService) and Mission Control, served by `python -m fleetmind.apps.agent_process`.
# It finds experts and the orchestrator through CONSUL_HTTP_ADDR and NOMAD_ADDR, as every fleetmind client does.

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the agent may be placed in."
}

variable "python" {
  type        = string
  default     = "/opt/fleetmind/venv/bin/python"
  description = "Python interpreter of the fleetmind installation on the node."
}

variable "port" {
  type        = number
  default     = 8000
  description = "Static port of the agent's HTTP/WebSocket server (Mission Control)."
}

variable "host" {
  type        = string
  default     = "0.0.0.0"
  description = "Address the agent binds; 127.0.0.1 keeps it on one box."
}

variable "state_dir" {
  type        = string
  default     = "/var/lib/fleetmind"
  description = "Where the agent keeps memory, saved state and logs (FLEETMIND_STATE_DIR)."
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

variable "embeddings_url" {
  type        = string
  default     = ""
  description = "URL of the embedding server (the llama-embedder job); empty: long-term memory and routing by meaning are off."
}

variable "api_keys" {
  type        = string
  default     = ""
  description = "SHA-256 hashes of the agent's API keys, comma-separated \"scope:sha256\" (PIECAT_API_KEYS); the Ansible role passes pipecatapp_api_keys. Empty: the keys of the state dir's keys.json only."
}

variable "service_secret" {
  type        = string
  default     = ""
  description = "The stack's service secret (FLEETMIND_SERVICE_SECRET): the gateway calls the agent with it, the agent calls the experts with it; `fleetmind up` passes the state dir's service.secret."
}

variable "service_proof" {
  type        = string
  default     = ""
  description = "HMAC of the service name and port with the service secret (`fleetmind.security.service.proof`), put in the registration's meta so the gateway only calls this instance; `fleetmind up` computes it."
}

job "pipecatapp" {
  datacenters = var.datacenters
  type        = "service"

  group "agent" {
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
      name     = "pipecatapp"
      port     = "http"
      provider = "consul"
      tags     = ["agent", "mission-control"]

      meta {
        fleetmind_proof = var.service_proof
      }

      check {
        name     = "agent health"
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"

        check_restart {
          limit           = 3
          grace           = "60s"
          ignore_warnings = false
        }
      }
    }

    task "agent" {
      driver = "raw_exec"

      config {
        command = var.python
        args    = ["-m", "fleetmind.apps.agent_process", "--host", var.host, "--port", "${NOMAD_PORT_http}"]
      }

      env {
        FLEETMIND_STATE_DIR            = var.state_dir
        CONSUL_HTTP_ADDR               = var.consul_addr
        NOMAD_ADDR                     = var.nomad_addr
        NOMAD_TOKEN                    = var.nomad_token
        CONSUL_HTTP_TOKEN              = var.consul_token
        HF_HUB_OFFLINE                 = "1"
        FLEETMIND_AGENT_EMBEDDINGS_URL = var.embeddings_url
        PIECAT_API_KEYS                = var.api_keys
        FLEETMIND_SERVICE_SECRET       = var.service_secret
      }

      resources {
        cpu    = 1000
        memory = 2048
      }

      kill_timeout = "10s"
    }
  }
}
