"""The `harness` command: one module per group of subcommands (main: up/down/status/env and the parser)."""
