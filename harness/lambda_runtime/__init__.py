"""A local Lambda service: the Lambda API in front of execution environments sized like Lambda's.

server: the REST API on 127.0.0.1 (`python -m harness.lambda_runtime.server`). registry: the functions,
their validated configuration and unpacked code. runtime: warm environments, the concurrency limit,
what an invoke returns. environment: one execution environment (a worker process with its memory limit
and CPU share), and what every kind shares. container: the compose backend's kind, a container the engine
sizes. worker: the runtime inside either. sandbox: what the worker does only in a container (port forwards,
the container's memory peak). protocol: frames between server and worker. report_line: the REPORT line.
publisher: CloudWatch Logs and metrics.
"""
