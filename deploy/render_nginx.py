"""Render deploy/nginx/posture.conf.template for a set of `posture serve` instances.

    python deploy/render_nginx.py --upstream 10.0.0.5:8000 --upstream 10.0.0.6:8000 \\
        --server-name posture.example.com --cert /etc/ssl/posture.pem --key /etc/ssl/posture.key \\
        --static-root /opt/posture/serving/static > /etc/nginx/conf.d/posture.conf

The template is envsubst-compatible too (the nginx image renders it in deploy/compose.yaml);
this script checks that every ``${POSTURE_*}`` variable is given instead of leaving it empty.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "posture.conf.template"
STATIC_ROOT = Path(__file__).resolve().parents[1] / "serving" / "static"
VARIABLE = re.compile(r"\$\{(POSTURE_[A-Z_]+)\}")
MAX_FAILS, FAIL_TIMEOUT_S = 2, 10  # passive health check per instance
# What `nginx -p PREFIX -c FILE` needs around the site when it runs outside /etc/nginx.
STANDALONE = """daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
worker_processes 1;
events {{
    worker_connections 1024;
}}
http {{
    types {{
        text/html html;
        text/css css;
        application/javascript js mjs;
        application/json json;
        image/svg+xml svg;
        image/png png;
    }}
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {site};
}}
"""


@dataclass(frozen=True)
class EdgeConfig:
    upstreams: Sequence[str]  # HOST:PORT of each `posture serve`
    cert: Path
    key: Path
    server_name: str = "_"
    public_host: str = "localhost"
    http_listen: str = "80"
    https_listen: str = "443"
    static_root: Path = STATIC_ROOT
    access_log: str = "/var/log/nginx/posture.access.log"

    def variables(self) -> dict[str, str]:
        if not self.upstreams:
            raise ValueError("at least one upstream instance is needed")
        return {
            "POSTURE_UPSTREAM_SERVERS": upstream_servers(self.upstreams),
            "POSTURE_HTTP_LISTEN": self.http_listen,
            "POSTURE_HTTPS_LISTEN": self.https_listen,
            "POSTURE_SERVER_NAME": self.server_name,
            "POSTURE_PUBLIC_HOST": self.public_host,
            "POSTURE_TLS_CERT": str(self.cert),
            "POSTURE_TLS_KEY": str(self.key),
            "POSTURE_STATIC_ROOT": str(self.static_root),
            "POSTURE_ACCESS_LOG": self.access_log,
        }


def upstream_servers(addresses: Sequence[str]) -> str:
    return "\n    ".join(f"server {a} max_fails={MAX_FAILS} fail_timeout={FAIL_TIMEOUT_S}s;" for a in addresses)


def render(variables: dict[str, str], template: str | None = None) -> str:
    """The template with every ``${POSTURE_*}`` replaced; KeyError names any left without a value."""
    text = TEMPLATE.read_text() if template is None else template
    missing = sorted(set(VARIABLE.findall(text)) - set(variables))
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return VARIABLE.sub(lambda match: variables[match.group(1)], text)


def standalone(site: Path, prefix: Path) -> str:
    """A whole nginx.conf that includes ``site``, with pid, logs and temp files under ``prefix``."""
    return STANDALONE.format(site=site, prefix=prefix)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", action="append", required=True, help="HOST:PORT of an instance (repeat).")
    parser.add_argument("--cert", type=Path, required=True, help="TLS certificate chain (PEM).")
    parser.add_argument("--key", type=Path, required=True, help="TLS private key (PEM).")
    parser.add_argument("--server-name", default="_")
    parser.add_argument("--public-host", help="host[:port] of the HTTPS site (default: the server name).")
    parser.add_argument("--http-listen", default="80")
    parser.add_argument("--https-listen", default="443")
    parser.add_argument("--static-root", type=Path, default=STATIC_ROOT)
    parser.add_argument("--access-log", default=EdgeConfig.access_log)
    args = parser.parse_args(argv)
    config = EdgeConfig(
        upstreams=args.upstream,
        cert=args.cert,
        key=args.key,
        server_name=args.server_name,
        public_host=args.public_host or args.server_name,
        http_listen=args.http_listen,
        https_listen=args.https_listen,
        static_root=args.static_root,
        access_log=args.access_log,
    )
    sys.stdout.write(render(config.variables()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
