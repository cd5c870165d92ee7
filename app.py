"""UNIREX Workbench app: ``python app.py [--workspace DIR] [--host H] [--port N] [--auth USER:PASSWORD]``
(or ``make app``, ``make app PORT=7861``).

Composition root: one :class:`workbench.Workbench` (with its background worker, paths confined to the
workspace) shared by the tabs of ``ui/``. On first start it writes the built-in demo dataset and builds it
for the default arch.

Safety: the app binds ``127.0.0.1:7860`` by default. Binding any other address, or ``--share``, needs a
login: ``--auth user:password`` or the environment variable ``UNIREX_APP_AUTH=user:password``; without one
the app refuses to start. A busy port is a one-line message and exit status 2.

Launcher settings that run a command or name a folder or a cluster on this machine (``launcher.slurm.setup``,
``launcher.slurm.folder``, ``launcher.ray.address``) never come from the app's users: they come from the
environment of whoever starts the app, ``UNIREX_APP_LAUNCHER_SLURM_SETUP``, ``UNIREX_APP_LAUNCHER_SLURM_FOLDER``
(inside the workspace) and ``UNIREX_APP_LAUNCHER_RAY_ADDRESS``.

Defaults of the forms (what a fresh machine trains in a few minutes on a CPU): ``--arch`` (env
``UNIREX_APP_ARCH``, default ``default``: the bundled MiniLM), ``--max-length`` (``UNIREX_APP_MAX_LENGTH``,
128 subwords), ``--num-train`` (``UNIREX_APP_NUM_TRAIN``, a 1,000-example train subsample; 0 = the whole
split), ``--method`` (``UNIREX_APP_METHOD``, ``slm_plaus_linear``); the Train tab also starts from two epochs,
batches of 8 and a learning rate of 5e-5.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys

from unirex.errors import UnirexError, register_secret
from unirex.registry import load_plugins

ENV_AUTH = "UNIREX_APP_AUTH"
ENV_ARCH = "UNIREX_APP_ARCH"
ENV_MAX_LENGTH = "UNIREX_APP_MAX_LENGTH"
ENV_NUM_TRAIN = "UNIREX_APP_NUM_TRAIN"
ENV_METHOD = "UNIREX_APP_METHOD"
HEADER = ("# UNIREX Workbench\nTrain and benchmark language-model rationale extractors (UNIREX, ICML 2022) on ERASER "
          "metrics: build a dataset, train a method of the paper, follow its runs, explain a text, compare methods.")


def build_app(wb, defaults=None):
    """The Gradio Blocks of the five tabs over one workbench."""
    # lazy: gradio is heavy: `python app.py --help` and a busy port do not need it
    import gradio as gr

    # lazy: the tabs pull gradio, which `python app.py --help` does not need
    from ui import compare as compare_tab
    from ui import datasets as datasets_tab
    from ui import explain as explain_tab
    from ui import runs as runs_tab
    from ui import train as train_tab
    from ui.common import AppDefaults

    defaults = defaults or AppDefaults()
    with gr.Blocks(title="UNIREX Workbench") as app:
        gr.Markdown(HEADER)
        with gr.Tabs() as tabs:
            with gr.Tab("Datasets") as t_data:
                ds_load, ds_in, ds_out, (ds_fn, ds_fin, ds_fout) = datasets_tab.build_tab(wb, defaults)
            with gr.Tab("Train") as t_train:
                train_timer, (check_fn, check_in, check_out), (tr_fn, tr_in, tr_out), followed = train_tab.build_tab(
                    wb, defaults)
            with gr.Tab("Runs", id="runs") as t_runs:
                runs_timer, (runs_fn, runs_in, runs_out), picked_runs = runs_tab.build_tab(wb)
            with gr.Tab("Explain") as t_explain:
                ex_fn, ex_in, ex_out = explain_tab.build_tab(wb, defaults)
            with gr.Tab("Compare", id="compare") as t_compare:
                cmp_fn, cmp_in, cmp_out, cmp_picked = compare_tab.build_tab(wb)
        timers = [train_timer, runs_timer]

        def only(active):
            return lambda: [gr.Timer(active=t is active) for t in timers]

        private = dict(api_visibility="private")
        t_data.select(only(None), None, timers, **private).then(ds_fn, ds_fin, ds_fout, **private)
        t_train.select(only(train_timer), None, timers, **private).then(tr_fn, tr_in, tr_out, **private)
        t_runs.select(only(runs_timer), None, timers, **private).then(runs_fn, runs_in, runs_out, **private)
        t_explain.select(only(None), None, timers, **private).then(ex_fn, ex_in, ex_out, **private)
        t_compare.select(only(None), None, timers, **private).then(cmp_fn, cmp_in, cmp_out, **private)
        # the runs picked one by one in the Runs tab, compared just those
        picked_runs.compare.click(lambda ids: (gr.update(choices=list(ids or []), value=list(ids or [])),
                                               gr.Tabs(selected="compare"), *[gr.Timer(active=False) for _ in timers]),
                                  [picked_runs.picks], [cmp_picked, tabs, *timers], **private).then(
            cmp_fn, cmp_in, cmp_out, **private)
        # the Train tab's followed run that ended, opened in the Runs tab
        followed.button.click(lambda job: (gr.Tabs(selected="runs"), followed.run_of(job) or gr.skip(),
                                           *[gr.Timer(active=t is runs_timer) for t in timers]),
                              [followed.job], [tabs, picked_runs.run, *timers], **private).then(
            runs_fn, runs_in, runs_out, **private)
        app.load(ds_load, ds_in, ds_out, **private)
        app.load(check_fn, check_in, check_out, **private)
        app.load(tr_fn, tr_in, tr_out, **private)  # every dataset picker lists what is on disk now
    return app


def hide_api_info_before_login() -> None:
    """Gradio embeds the API description (endpoint names, parameter defaults) in the page it serves before
    the login, with ``--auth`` too; serve that page without it, so a visitor who has not logged in gets
    the login form and nothing else."""
    # lazy: gradio is heavy: `python app.py --help` and a busy port do not need it
    import gradio.routes as routes

    render = routes.templates.TemplateResponse
    if getattr(render, "_unirex_login_guard", False):
        return

    def guarded(*args, **kwargs):
        context = kwargs.get("context")
        if isinstance(context, dict) and (context.get("config") or {}).get("auth_required"):
            context["gradio_api_info"] = {}
        return render(*args, **kwargs)

    guarded._unirex_login_guard = True
    routes.templates.TemplateResponse = guarded


#: Gradio routes that act on another visitor's session and that Gradio serves without its login check
LOGIN_REQUIRED_ROUTES = ("/gradio_api/cancel", "/gradio_api/reset")


class _LoginRequired:
    """ASGI middleware: with a login, :data:`LOGIN_REQUIRED_ROUTES` answer 401 to a visitor without a
    session cookie of the app (Gradio checks its login on the other routes itself)."""

    def __init__(self, app, gradio_app):
        self.app, self.gradio_app = app, gradio_app

    async def __call__(self, scope, receive, send):
        g = self.gradio_app
        if (scope["type"] == "http" and getattr(g, "auth", None) is not None
                and scope["path"].rstrip("/").endswith(LOGIN_REQUIRED_ROUTES)):
            # lazy: starlette comes with gradio, which `python app.py --help` does not need
            from starlette.requests import Request
            from starlette.responses import JSONResponse

            cookies = Request(scope).cookies
            token = cookies.get(f"access-token-{g.cookie_id}") or cookies.get(f"access-token-unsecure-{g.cookie_id}")
            if g.tokens.get(token) is None:
                await JSONResponse({"detail": "Not authenticated"}, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def require_login_on_session_routes() -> None:
    """Gradio serves ``/gradio_api/cancel`` (and ``/reset``) without its login check: anyone could cancel
    a logged-in user's running event. Every Gradio app made from now on checks the login there too."""
    # lazy: gradio is heavy: `python app.py --help` and a busy port do not need it
    import gradio.routes as routes

    create = routes.App.create_app
    if getattr(create, "_unirex_login_guard", False):
        return

    def create_app(*args, **kwargs):
        gradio_app = create(*args, **kwargs)
        gradio_app.add_middleware(_LoginRequired, gradio_app=gradio_app)
        return gradio_app

    create_app._unirex_login_guard = True
    routes.App.create_app = staticmethod(create_app)


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("give the login as user:password")
    return user, password


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"error: {name}={raw!r} is not a whole number") from None


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="UNIREX Workbench (the Gradio app)")
    p.add_argument("--workspace", help="workspace folder (default: $UNIREX_WORKSPACE or ./workspace)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --auth)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="a public Gradio share link (needs --auth)")
    p.add_argument("--auth", help=f"login as user:password (or ${ENV_AUTH}); required off loopback and with --share")
    p.add_argument("--arch", default=os.environ.get(ENV_ARCH) or "default",
                   help=f"default arch of the forms (${ENV_ARCH}; default: the bundled MiniLM)")
    p.add_argument("--max-length", type=int, default=_env_int(ENV_MAX_LENGTH, 128),
                   help=f"default data.max_length (${ENV_MAX_LENGTH}; default 128)")
    p.add_argument("--num-train", type=int, default=_env_int(ENV_NUM_TRAIN, 1000),
                   help=f"default train subsample, 0 = the whole split (${ENV_NUM_TRAIN}; default 1000)")
    p.add_argument("--method", default=os.environ.get(ENV_METHOD) or "slm_plaus_linear",
                   help=f"default method preset of the Train tab (${ENV_METHOD})")
    p.add_argument("--no-demo", action="store_true", help="do not build the demo dataset on start")
    return p


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)

    def fail(msg: str) -> int:
        print(f"error: {msg}", file=sys.stderr)
        return 2

    try:
        auth = parse_auth(args.auth or os.environ.get(ENV_AUTH))
    except ValueError as e:
        return fail(f"--auth / ${ENV_AUTH}: {e}")
    if (args.share or not is_loopback(args.host)) and auth is None:
        why = ("--share publishes the app on the internet" if args.share
               else f"--host {args.host} is reachable from other machines")
        return fail(f"{why}: give a login with --auth user:password (or ${ENV_AUTH}=user:password), "
                    "or bind 127.0.0.1")
    if auth is not None:  # --auth too (UNIREX_APP_AUTH is scrubbed anyway): never in a message of the app
        register_secret(":".join(auth))
    if not 1 <= args.port <= 65535:
        return fail(f"--port {args.port} is not a port number (1-65535)")
    if port_in_use(args.host, args.port):
        return fail(f"port {args.port} on {args.host} is already in use (is the app already running?); "
                    f"choose another with --port N (make app PORT=N)")

    # lazy: the tabs pull gradio and the workbench polars: `python app.py --help` and a busy port need neither
    from ui.common import AppDefaults
    from workbench import Workbench
    from workbench.launchers import server_launcher_values

    try:  # $UNIREX_PLUGINS of whoever starts the app (never anything typed into it): before the worker starts
        load_plugins()
    except UnirexError as e:
        return fail(str(e))
    defaults = AppDefaults(arch=args.arch, max_length=args.max_length, num_train=args.num_train or None,
                           method=args.method)
    wb = Workbench(args.workspace, start_worker=True, confine=True, trusted_archs=(args.arch,),
                   launcher_settings=server_launcher_values())
    try:
        if not args.no_demo:  # first start: the demo dataset ready to use
            wb.build_dataset("demo", defaults.arch, defaults.max_length)
        wb.sync()
    except UnirexError as e:
        return fail(wb.public_message(e))
    app = build_app(wb, defaults)
    if auth is not None:
        hide_api_info_before_login()
        require_login_on_session_routes()
    # lazy: pulls polars, which this module does not otherwise load
    from workbench.datasets import upload_limit

    wb.exports_dir.mkdir(parents=True, exist_ok=True)
    try:
        app.queue().launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth,
                           auth_message="UNIREX Workbench: log in with the user and password the app was started with.",
                           allowed_paths=[str(wb.exports_dir)], max_file_size=upload_limit(), show_error=False)
    except OSError as e:
        return fail(f"cannot serve on {args.host}:{args.port}: {e.strerror or e}")
    finally:
        wb.stop_worker()  # a running job stops within a step and reads cancelled
    return 0


if __name__ == "__main__":
    sys.exit(main())
