# One llama.cpp expert: llama-server on a GGUF model, registered as "expert-<name>" so the router finds it by tag.
# Run on a cluster:  nomad job run -var model=/srv/models/m.gguf -var expert_name=code jobs/llama-expert.nomad.hcl
# `fleetmind up` runs the same file on the embedded orchestrator (host 127.0.0.1).

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the expert may be placed in."
}

variable "llama_server" {
  type        = string
  default     = "/opt/fleetmind/bin/llama-server"
  description = "Path of the llama-server program on the node."
}

variable "model" {
  type        = string
  description = "Path of the GGUF model file the expert serves (on the node)."
}

variable "expert_name" {
  type        = string
  default     = "general"
  description = "Name of the expert; the service is expert-<name>, tagged expert and expert:<name>."
}

variable "system_prompt" {
  type        = string
  default     = "You are a helpful assistant."
  description = "System prompt the agent gives this expert when a conversation has none (published in the service meta)."
}

variable "port" {
  type        = number
  default     = 8090
  description = "Static port llama-server listens on."
}

variable "host" {
  type        = string
  default     = "0.0.0.0"
  description = "Address llama-server binds; 0.0.0.0 on a cluster so the router can reach it, 127.0.0.1 on one box."
}

variable "threads" {
  type        = number
  default     = 2
  description = "CPU threads llama-server uses for generation (-t)."
}

variable "ctx_size" {
  type        = number
  default     = 2048
  description = "Context window in tokens (-c)."
}

job "llama-expert" {
  datacenters = var.datacenters
  type        = "service"

  group "expert" {
    count = 1

    network {
      port "http" {
        static = var.port
      }
    }

    # A crash is retried quickly; a model that keeps crashing backs off for the rest of the interval.
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
      name     = "expert-${var.expert_name}"
      port     = "http"
      provider = "consul"
      tags     = ["expert", "expert:${var.expert_name}"]

      meta {
        expert = var.expert_name
        model         = basename(var.model)
        system_prompt = var.system_prompt
      }

      check {
        name     = "llama-server health"
        type     = "http"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"

        # Loading a large model takes a while: only a server that stops answering after that gets restarted.
        check_restart {
          limit           = 3
          grace           = "60s"
          ignore_warnings = false
        }
      }
    }

    task "llama-server" {
      driver = "raw_exec"

      config {
        command = var.llama_server
        args = [
          "-m", var.model,
          "--host", var.host,
          "--port", "${NOMAD_PORT_http}",
          "-c", "${var.ctx_size}",
          "-t", "${var.threads}",
          "--no-webui",
        ]
      }

      env {
        HF_HUB_OFFLINE = "1"
      }

      resources {
        cpu    = 2000
        memory = 1024
      }

      kill_timeout = "10s"
    }
  }
}
