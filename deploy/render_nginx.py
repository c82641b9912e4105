"""Write an nginx.conf for several app processes from deploy/nginx.conf.template.

    python deploy/render_nginx.py --listen 0.0.0.0:80 --app 127.0.0.1:8501 --app 127.0.0.1:8502 \\
        --prefix /var/lib/simplecnn-nginx > /etc/nginx/simplecnn.conf
    nginx -c /etc/nginx/simplecnn.conf
"""
from __future__ import annotations

import argparse
import string
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.template")


def render(listen: str, apps: list[str], prefix: str) -> str:
    """The config text; raises ValueError for an app address that is not host:port."""
    for app in apps:
        host, _, port = app.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"not host:port: {app!r}")
    upstreams = "\n".join(f"        server {app};" for app in apps)
    return string.Template(TEMPLATE.read_text()).safe_substitute(LISTEN=listen, UPSTREAMS=upstreams, PREFIX=prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="0.0.0.0:80", help="address nginx listens on (default 0.0.0.0:80)")
    parser.add_argument("--app", action="append", required=True, help="an app process, host:port (repeat)")
    parser.add_argument("--prefix", default="/var/lib/simplecnn-nginx",
                        help="folder for nginx's pid, logs and temporary files (default /var/lib/simplecnn-nginx)")
    args = parser.parse_args()
    print(render(args.listen, args.app, args.prefix))


if __name__ == "__main__":
    main()
