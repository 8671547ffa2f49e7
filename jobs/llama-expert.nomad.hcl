# One llama.cpp expert: llama-server on a GGUF model, registered as "expert-<name>" so the router finds it by tag.
# Run on a cluster:  nomad job run -var model=/srv/models/m.gguf -var expert_name=code jobs/llama-expert.nomad.hcl
# `fleetmind up` runs the same file on the embedded orchestrator (host 127.0.0.1).
# Spanning machines: with -var rpc_workers=N the task runs `python -m fleetmind.cluster.expert_launcher`, which waits for N
# healthy "llamacpp-rpc" workers in Consul (jobs/llamacpp-rpc.nomad.hcl) and then execs this same llama-server
# command with `--rpc host:port,... -ngl 99` (rpc_gpu_layers); if none appear within rpc_wait seconds it starts locally instead.

variable "node_classes" {
  type        = string
  default     = ".*"
  description = "Regular expression over the node's placement class (meta fleetmind_class: avx512, avx2, avx, sse42, legacy; see fleetmind.llm.node_class) a node must match to run this job; the default allows any class, so one weak box still runs it. E.g. \"^(avx512|avx2)$\"."
}

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

variable "generation" {
  type        = string
  default     = "{}"
  description = "The expert's generation defaults as a JSON object (temperature, top_p, top_k, min_p, repeat_penalty, dry_multiplier, dry_allowed_length, dry_sequence_breakers, max_tokens, seed), published in the service meta; the agent applies them where a request sets none. `fleetmind up` writes them from the expert's profile (fleetmind/agent/experts.yaml); \"{}\" leaves llama-server's own."
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

variable "extra_args" {
  type        = list(string)
  default     = []
  description = "More llama-server arguments, appended after the others (e.g. [\"-lv\", \"4\"] to log layer placement)."
}

variable "fallback_model" {
  type        = string
  default     = ""
  description = "A light GGUF served instead of `model` when that cannot be served on the node (missing, too big for free memory, crashing while loading), so the expert always starts; empty: none."
}

variable "rpc_workers" {
  type        = number
  default     = 0
  description = "Least number of healthy ggml-rpc-server workers to split the model over; 0 serves on this node alone."
}

variable "rpc_gpu_layers" {
  type        = number
  default     = 99
  description = "Layers the split puts on the workers (llama.cpp's -ngl): 99 includes the output layer, so every token's logits cross the network back; the model's layer count (e.g. 30 for SmolLM2) keeps the output layer here (measured faster, see the README's RPC section)."
}

variable "rpc_service" {
  type        = string
  default     = "llamacpp-rpc"
  description = "Consul service the RPC workers register (jobs/llamacpp-rpc.nomad.hcl)."
}

variable "rpc_wait" {
  type        = number
  default     = 60
  description = "Seconds to wait for rpc_workers healthy workers before starting on this node alone."
}

variable "python" {
  type        = string
  default     = "/opt/fleetmind/venv/bin/python"
  description = "Python of the fleetmind installation on the node (runs the RPC launcher when rpc_workers > 0)."
}

variable "consul_addr" {
  type        = string
  default     = "127.0.0.1:8500"
  description = "Consul (or embedded registry) HTTP address where the launcher looks for RPC workers (CONSUL_HTTP_ADDR)."
}

variable "consul_token" {
  type        = string
  default     = ""
  description = "ACL token the launcher reads the registry with (CONSUL_HTTP_TOKEN)."
}

variable "service_secret" {
  type        = string
  default     = ""
  description = "The stack's service secret: llama-server's API key (LLAMA_API_KEY, i.e. --api-key, kept out of the command line); empty: no key (a server started by hand)."
}

variable "service_proof" {
  type        = string
  default     = ""
  description = "HMAC of the service name and port with the service secret (`fleetmind.security.service.proof`), put in the registration's meta so the agent only calls this instance; `fleetmind up` computes it."
}

job "llama-expert" {
  datacenters = var.datacenters
  type        = "service"

  # Place by node class (the provisioning run writes meta.fleetmind_class; the embedded node classifies itself).
  constraint {
    attribute = "${meta.fleetmind_class}"
    operator  = "regexp"
    value     = var.node_classes
  }

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
        expert          = var.expert_name
        model           = basename(var.model)
        system_prompt   = var.system_prompt
        generation      = var.generation
        fleetmind_proof = var.service_proof
        # the node's placement class, shown in the agent's expert directory
        node_class = "${meta.fleetmind_class}"
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

      # With rpc_workers > 0 or a fallback_model the launcher runs first: it swaps in the fallback model when the main
      # one cannot be served, finds the workers in the registry (what a template stanza would do on Nomad) and execs
      # the llama-server command (with --rpc when splitting), so the task's process is llama-server either way.
      config {
        command = var.rpc_workers > 0 ? var.python : var.fallback_model != "" ? var.python : var.llama_server
        args = concat(
          var.rpc_workers > 0 ? [
            "-m", "fleetmind.cluster.expert_launcher",
            "--min-workers", "${var.rpc_workers}",
            "--service", var.rpc_service,
            "--wait", "${var.rpc_wait}",
            "--n-gpu-layers", "${var.rpc_gpu_layers}",
          ] : var.fallback_model != "" ? ["-m", "fleetmind.cluster.expert_launcher", "--min-workers", "0"] : [],
          var.fallback_model != "" ? [
            "--fallback-model", var.fallback_model,
            "--state-file", "${NOMAD_TASK_DIR}/expert-launch.json",
          ] : [],
          var.rpc_workers > 0 ? ["--", var.llama_server] : var.fallback_model != "" ? ["--", var.llama_server] : [],
          [
            "-m", var.model,
            "--host", var.host,
            "--port", "${NOMAD_PORT_http}",
            "-c", "${var.ctx_size}",
            "-t", "${var.threads}",
            # A conversation whose early turns were dropped (the voice history cut back, a client's sliding
            # window) keeps its later turns in the cache: they are shifted to their new place instead of read again
            # (bench.voice_latency: the cut-back turns' first token 0.3-1.2 s -> ~0.1 s; a model whose cache cannot
            # shift makes llama-server turn it off with a warning).
            "--cache-reuse", "16",
            "--no-webui",
            # no CORS for any web page: llama-server has no "off", so allow one origin no page can have, without
            # credentials (its default reflects every Origin with credentials)
            "--cors-origins", "https://no-cors.invalid", "--no-cors-credentials",
          ],
          var.extra_args,
        )
      }

      env {
        HF_HUB_OFFLINE    = "1"
        CONSUL_HTTP_ADDR  = var.consul_addr
        CONSUL_HTTP_TOKEN = var.consul_token
        LLAMA_API_KEY     = var.service_secret
      }

      resources {
        cpu    = 2000
        memory = 1024
      }

      kill_timeout = "10s"
    }
  }
}
