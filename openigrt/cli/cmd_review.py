"""``openigrt review``: the review workstation of a session work directory in the browser (MATCH-7)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from openigrt.cli.common import EXIT_OK, settings_from_options, setup_logging


@click.command("review")
@click.option("--workdir", required=True, type=click.Path(path_type=Path),
              help="Session work directory (the one holding session.json).")
@click.option("--bind", default=None, help="Address to listen on [review.bind_address: 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to listen on [review.port: 0 = any free port].")
@click.option("--allow-remote", is_flag=True, help="Allow a non-loopback --bind (the page is then reachable "
              "from other machines by anyone holding the URL's token).")
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="OPENIGRT_CONFIG", help="TOML configuration file (env OPENIGRT_CONFIG).")
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE", help="Override any config key (repeatable).")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def review_command(*, workdir: Path, bind: str | None, port: int | None, allow_remote: bool, config: Path | None,
                   set_: tuple[str, ...], verbose: int) -> int:
    """Serve the review of a session: see, adjust, accept or reject every match (prints the URL; Ctrl-C stops)."""
    from openigrt.web.server import ReviewServer, check_bind
    from openigrt.workflow.review_session import ReviewSession

    setup_logging(verbose)
    settings = settings_from_options(config, set_=set_)
    host = bind or settings.review.bind_address
    check_bind(host, allow_remote=allow_remote or settings.review.allow_remote)
    review = ReviewSession(workdir, settings)
    with ReviewServer(review, host=host, port=settings.review.port if port is None else port) as server:
        print(f"review of {workdir}: {server.url}", flush=True)
        print("open it in a browser on this machine; Ctrl-C stops", file=sys.stderr, flush=True)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            print("review stopped", file=sys.stderr, flush=True)
    return EXIT_OK


def register(group: click.Group) -> None:
    group.add_command(review_command)
