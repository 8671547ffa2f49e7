# llama.cpp RPC workers: `ggml-rpc-server` on each node lends its CPU/GPU and memory to an expert that spans machines.
# Each worker registers the service "llamacpp-rpc" (tag "rpc"); llama-expert with -var rpc_workers=N finds them there.
# Run on a cluster:  nomad job run -var workers=3 jobs/llamacpp-rpc.nomad.hcl
#
# Placement: only on nodes tagged for RPC workers (node meta fleetmind_rpc = "true"; the nomad role writes it for hosts
# in the inventory group rpc_workers, hosts the call-home placed as rpc_worker, or hosts with fleetmind_rpc: true), and
# one worker per node (distinct_hosts): a second worker on the same machine lends no memory that the first could not,
# and only adds a network hop. With fewer tagged nodes than workers, the rest stay queued until a node joins; on one
# box (the embedded cluster) one worker runs and `fleetmind status` says why the others wait.
#
# Health: a worker serves one client at a time and its listen backlog is 1, so a plain TCP check stops connecting
# once an expert holds the worker (measured: the third probe times out) and check_restart would then kill a worker in
# use. The "health" sidecar instead reads the kernel's socket table: 200 when the worker listens and is free, 429
# (Consul "warning") while an expert is connected, so busy workers drop out of discovery without being restarted.
# The ggml RPC protocol has no authentication: bind it to a private network only.

variable "node_classes" {
  type        = string
  default     = ".*"
  description = "Regular expression over the node's placement class (meta fleetmind_class: avx512, avx2, avx, sse42, legacy; see fleetmind.llm.node_class) a node must match to run this job; the default allows any class, so one weak box still runs it. E.g. \"^(avx512|avx2)$\"."
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the workers may be placed in."
}

variable "distinct_hosts" {
  type        = bool
  default     = true
  description = "One worker per node (Nomad's distinct_hosts). Off only to run several workers on one machine: loopback tests and benches."
}

variable "rpc_server" {
  type        = string
  default     = "/opt/fleetmind/bin/ggml-rpc-server"
  description = "Path of the ggml-rpc-server program on the node (fleetmind.llm.binaries.rpc_server() locally)."
}

variable "python" {
  type        = string
  default     = "/opt/fleetmind/venv/bin/python"
  description = "Python of the fleetmind installation on the node (runs the health sidecar)."
}

variable "workers" {
  type        = number
  default     = 2
  description = "Number of workers (allocations) to run."
}

variable "host" {
  type        = string
  default     = "0.0.0.0"
  description = "Address ggml-rpc-server binds; the node's private address on a cluster, 127.0.0.1 on one box."
}

variable "threads" {
  type        = number
  default     = 2
  description = "CPU threads of each worker's CPU device (-t)."
}

variable "cpu" {
  type        = number
  default     = 2000
  description = "CPU (MHz) reserved for each worker."
}

variable "memory" {
  type        = number
  default     = 2048
  description = "Memory (MB) reserved for each worker: its share of the model's layers and KV cache."
}

job "llamacpp-rpc" {
  datacenters = var.datacenters
  type        = "service"

  # Place by node class (the provisioning run writes meta.fleetmind_class; the embedded node classifies itself).
  constraint {
    attribute = "${meta.fleetmind_class}"
    operator  = "regexp"
    value     = var.node_classes
  }

  # Only on hosts tagged for RPC workers (the nomad role's meta.fleetmind_rpc; the embedded node is tagged).
  constraint {
    attribute = "${meta.fleetmind_rpc}"
    value     = "true"
  }

  # One worker per node.
  constraint {
    operator = "distinct_hosts"
    value    = var.distinct_hosts
  }

  group "worker" {
    count = var.workers

    network {
      port "rpc" {}
      port "health" {}
    }

    # A crashed worker comes back fast; the expert that used it restarts and finds the workers again.
    restart {
      attempts = 5
      interval = "5m"
      delay    = "2s"
      mode     = "delay"
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    service {
      name     = "llamacpp-rpc"
      port     = "rpc"
      provider = "consul"
      tags     = ["rpc"]

      meta {
        threads = "${var.threads}"
      }

      check {
        name     = "ggml-rpc-server listening"
        type     = "http"
        port     = "health"
        path     = "/health"
        interval = "5s"
        timeout  = "2s"

        # Only a worker that stops listening is restarted; "busy" is a warning and is not counted.
        check_restart {
          limit           = 3
          grace           = "10s"
          ignore_warnings = true
        }
      }
    }

    task "ggml-rpc-server" {
      driver = "raw_exec"

      config {
        command = var.rpc_server
        args = [
          "-H", var.host,
          "-p", "${NOMAD_PORT_rpc}",
          "-t", "${var.threads}",
        ]
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }

      kill_timeout = "5s"
    }

    task "health" {
      driver = "raw_exec"

      config {
        command = var.python
        args = [
          "-m", "fleetmind.llm.rpc_health",
          "--rpc-port", "${NOMAD_PORT_rpc}",
          "--host", var.host,
          "--port", "${NOMAD_PORT_health}",
        ]
      }

      resources {
        cpu    = 50
        memory = 64
      }

      kill_timeout = "2s"
    }
  }
}
