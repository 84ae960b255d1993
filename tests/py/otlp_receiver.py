"""A loopback OTLP/HTTP logs receiver for the export tests.

It decodes each `POST /v1/logs` body with the official OpenTelemetry protobuf
definitions (the PyPI package `opentelemetry-proto`) and appends one JSON line
per log record to --out, keeping every value's OTLP type
({"int": 3}, {"string": "x"}, {"array": [...]}, ...), so a test can check
the exported records field by field. `--fail-first N` answers the first N
requests with 503 (a sink outage). Bound to 127.0.0.1 only; the chosen port
is written to --port-file once it listens.
"""

import argparse
import gzip
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)


def typed(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return {"string": v.string_value}
    if kind == "int_value":
        return {"int": v.int_value}
    if kind == "bool_value":
        return {"bool": v.bool_value}
    if kind == "double_value":
        return {"double": v.double_value}
    if kind == "bytes_value":
        return {"bytes": v.bytes_value.hex()}
    if kind == "array_value":
        return {"array": [typed(x) for x in v.array_value.values]}
    if kind == "kvlist_value":
        return {"kvlist": {kv.key: typed(kv.value) for kv in v.kvlist_value.values}}
    raise ValueError(kind)


def attrs(kvs):
    out = {}
    for kv in kvs:
        assert kv.key not in out, f"duplicate attribute {kv.key}"
        out[kv.key] = typed(kv.value)
    return out


class Handler(BaseHTTPRequestHandler):
    requests = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        Handler.requests += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if Handler.requests <= self.server.fail_first:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path != "/v1/logs" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        req = ExportLogsServiceRequest.FromString(body)
        lines = []
        for rl in req.resource_logs:
            resource = attrs(rl.resource.attributes)
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    lines.append(json.dumps({
                        "request": Handler.requests,
                        "resource": resource,
                        "scope": {"name": sl.scope.name, "version": sl.scope.version},
                        "time_unix_nano": r.time_unix_nano,
                        "observed_time_unix_nano": r.observed_time_unix_nano,
                        "severity_number": r.severity_number,
                        "severity_text": r.severity_text,
                        "event_name": r.event_name,
                        "body": typed(r.body),
                        "attributes": attrs(r.attributes),
                    }, sort_keys=True))
        with open(self.server.out, "a") as f:
            for line in lines:
                f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        resp = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(resp)))
        self.end_headers()
        try:
            self.wfile.write(resp)
        except BrokenPipeError:
            pass  # a sender killed by its test after the records were stored


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--fail-first", type=int, default=0)
    a = p.parse_args()
    srv = HTTPServer(("127.0.0.1", 0), Handler)
    srv.out = a.out
    srv.fail_first = a.fail_first
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
