"""The Lambda REST API on 127.0.0.1, in front of the function registry and the runtime that invokes them;
run as `python -m harness.lambda_runtime.server`.

Served: CreateFunction, GetFunction, GetFunctionConfiguration, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction, ListFunctions, GetAccountSettings and Invoke
(RequestResponse and DryRun). Errors have AWS's shape (x-amzn-ErrorType header, JSON body with
Type and message), so boto3 raises the same exceptions it raises against AWS. Requests are not
signature-checked, as LocalStack does not check them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from harness.lambda_runtime.environment import EnvironmentKind
from harness.lambda_runtime.publisher import CloudWatchPublisher
from harness.lambda_runtime.registry import LambdaApiError
from harness.lambda_runtime.runtime import LambdaRuntime, RuntimeOptions
from harness.lambda_runtime.sandbox import parse_forwards
from harness.services.lambda_server import HEALTH_PATH
from harness.services.osuser import server_user

# A zipped function of 50 MB, base64 in a JSON body, is about 67 MB.
MAX_BODY_BYTES = 70 * 1024 * 1024

Route = tuple[str, re.Pattern[str], str]
ROUTES: list[Route] = [
    (method, re.compile(f"^{pattern}$"), action)
    for method, pattern, action in (
        ("POST", r"/2015-03-31/functions/?", "create"),
        ("GET", r"/2015-03-31/functions/?", "list"),
        ("GET", r"/2015-03-31/functions/(?P<name>[^/]+)/?", "get"),
        ("GET", r"/2015-03-31/functions/(?P<name>[^/]+)/configuration/?", "get_configuration"),
        ("PUT", r"/2015-03-31/functions/(?P<name>[^/]+)/code/?", "update_code"),
        ("PUT", r"/2015-03-31/functions/(?P<name>[^/]+)/configuration/?", "update_configuration"),
        ("DELETE", r"/2015-03-31/functions/(?P<name>[^/]+)/?", "delete"),
        ("POST", r"/2015-03-31/functions/(?P<name>[^/]+)/invocations/?", "invoke"),
        ("GET", r"/2016-08-19/account-settings/?", "account_settings"),
        ("GET", r"/_harness/code/(?P<name>[^/]+)", "code"),
        ("GET", HEALTH_PATH, "health"),
    )
]


class LambdaApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LambdaHttpServer
    body = b""

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request in the runtime's log, without the client address noise.
        sys.stderr.write(f"{self.command} {self.path.split('?')[0]} {args[1] if len(args) > 1 else ''}\n")

    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            # The unread body would be parsed as the next request: answer, and end the connection.
            self.close_connection = True
            self._error(
                LambdaApiError(413, "RequestEntityTooLargeException", f"request body exceeds {MAX_BODY_BYTES} bytes"),
                {"Connection": "close"},
            )
            return
        # Read before routing, so that every answer, errors included, leaves the connection reusable.
        self.body = self.rfile.read(length) if length else b""
        for method, pattern, action in ROUTES:
            match = pattern.match(path)
            if match and method == self.command:
                name = unquote(match.groupdict().get("name", ""))
                try:
                    getattr(self, f"_{action}")(name)
                except LambdaApiError as exc:
                    self._error(exc)
                except Exception as exc:
                    # The runtime's log gets the traceback; the client gets Lambda's ServiceException.
                    traceback.print_exc(file=sys.stderr)
                    self._error(LambdaApiError(500, "ServiceException", f"local Lambda runtime failed: {exc!r}"))
                return
        self._error(LambdaApiError(404, "UnknownOperationException", f"no Lambda operation at {self.command} {path}"))

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch

    # -- plumbing ---------------------------------------------------------------------------------

    def _json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.body or b"{}")
        except ValueError:
            raise LambdaApiError(400, "InvalidRequestContentException", "request body is not JSON") from None
        if not isinstance(body, dict):
            raise LambdaApiError(400, "InvalidRequestContentException", "request body must be a JSON object")
        return body

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def _error(self, exc: LambdaApiError, headers: dict[str, str] | None = None) -> None:
        body = {"Type": "User" if exc.status < 500 else "Service", "message": exc.message, **exc.extra}
        self._send(
            exc.status,
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "x-amzn-ErrorType": exc.error_type, **(headers or {})},
        )

    # -- operations -------------------------------------------------------------------------------

    def _create(self, _: str) -> None:
        self._json(201, self.server.runtime.registry.create_function(self._json_body()))

    def _list(self, _: str) -> None:
        self._json(200, {"Functions": self.server.runtime.registry.list_functions()})

    def _get(self, name: str) -> None:
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        self._json(200, self.server.runtime.registry.get_function(name, f"http://{host}/_harness/code/{name}"))

    def _get_configuration(self, name: str) -> None:
        self._json(200, self.server.runtime.registry.get_configuration(name))

    def _update_code(self, name: str) -> None:
        self._json(200, self.server.runtime.registry.update_code(name, self._json_body()))

    def _update_configuration(self, name: str) -> None:
        self._json(200, self.server.runtime.registry.update_configuration(name, self._json_body()))

    def _delete(self, name: str) -> None:
        self.server.runtime.registry.delete_function(name)
        self._send(204, b"")

    def _account_settings(self, _: str) -> None:
        self._json(200, self.server.runtime.account_settings())

    def _code(self, name: str) -> None:
        self._send(200, self.server.runtime.registry.code_zip(name), {"Content-Type": "application/zip"})

    def _health(self, _: str) -> None:
        self._json(200, self.server.runtime.facts())

    def _invoke(self, name: str) -> None:
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        payload = self.body
        if kind == "DryRun":
            self.server.runtime.registry.get_configuration(name)
            self._send(204, b"")
            return
        if kind != "RequestResponse":
            raise LambdaApiError(
                400,
                "InvalidParameterValueException",
                f"InvocationType {kind!r} is not supported by the local Lambda runtime: it runs RequestResponse "
                "(synchronous) and DryRun invocations; invoke synchronously instead",
            )
        result = self.server.runtime.invoke(name, payload, self.headers.get("X-Amz-Client-Context"))
        headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
        if result.function_error:
            headers["X-Amz-Function-Error"] = result.function_error
        if self.headers.get("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = result.log_tail
        self._send(result.status, result.payload, headers)


class LambdaHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # Lambda's own API answers bursts; the default backlog of 5 would refuse connections in one.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], runtime: LambdaRuntime) -> None:
        super().__init__(address, LambdaApiHandler)
        self.runtime = runtime


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Local Lambda runtime (Invoke API) for the harness")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--aws-endpoint", required=True, help="the AWS emulator (CloudWatch Logs and metrics)")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--cgroups", choices=("auto", "off", "require"), default="auto")
    parser.add_argument("--cgroup-prefix", required=True)
    parser.add_argument("--run-as", required=True, help="the unprivileged account workers run as when root")
    parser.add_argument(
        "--environments",
        choices=("process", "container"),
        default="process",
        help="run each execution environment as a worker process (cgroups) or as a container the engine sizes",
    )
    container = parser.add_argument_group("container environments")
    container.add_argument("--image", help="the image every environment runs (compose/lambda/Dockerfile)")
    container.add_argument("--network", help="the compose network the containers join")
    container.add_argument("--project", help="the label value every container carries (the compose project)")
    container.add_argument(
        "--forward",
        default="",
        help="published ports forwarded inside each container: <port>=<service>:<port>,...",
    )
    args = parser.parse_args(argv)
    if args.environments == "container":
        missing = [f"--{name}" for name in ("image", "network", "project") if not getattr(args, name)]
        if missing:
            parser.error(f"--environments container needs {', '.join(missing)}")
        try:
            args.forwards = parse_forwards(args.forward)
        except ValueError as exc:
            parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    import boto3

    credentials = {
        "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    }

    def client(service: str) -> Any:
        return boto3.client(service, region_name=args.region, endpoint_url=args.aws_endpoint, **credentials)

    base_env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": args.region,
        "AWS_DEFAULT_REGION": args.region,
        # Functions reach the emulator the way LocalStack's Lambdas do: boto3 honours AWS_ENDPOINT_URL.
        "AWS_ENDPOINT_URL": args.aws_endpoint,
        "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
    }
    options = RuntimeOptions(
        state_dir=args.state_dir,
        region=args.region,
        concurrency_limit=args.concurrency,
        cgroups=args.cgroups,
        cgroup_prefix=args.cgroup_prefix,
        base_env=base_env,
    )
    publisher = CloudWatchPublisher(client("logs"), client("cloudwatch"))
    environments: EnvironmentKind | None = None
    if args.environments == "container":
        # Imported here: a runtime of worker processes never loads the engine's client.
        from harness.lambda_runtime.container import ContainerEnvironments, ContainerOptions

        environments = ContainerEnvironments(ContainerOptions(args.image, args.network, args.project, args.forwards))
    runtime = LambdaRuntime(options, server_user(args.run_as), publisher, environments)
    runtime.start()
    publisher.start()
    httpd = LambdaHttpServer((args.host, args.port), runtime)

    def stop(signum: int, _frame: Any) -> None:
        # shutdown() blocks until serve_forever returns, so it cannot run on the serving thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"lambda runtime listening on http://{args.host}:{args.port} (concurrency {args.concurrency}; "
        f"{runtime.environments.detail})",
        file=sys.stderr,
        flush=True,
    )
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        runtime.shutdown()
        publisher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
