"""The HTTP job server the Blender add-on (local mode) and remote clients (a render farm) talk to.

`dance-any-beat serve` runs it. The add-on never imports torch: it starts this process (or connects to one on a
GPU box), uploads a still and the timeline audio, polls the job and fetches the frames. Modules:

    app.py     the FastAPI app (routes, error shape, bearer-token and body-size middleware) and `serve`
    jobs.py    the job store on disk (one folder per job, state.json), the queue and its worker threads
    inputs.py  the request parameters (a pydantic model) and the checks every upload passes before it is queued
    auth.py    the bearer token: where it comes from, where it is handed over, constant-time comparison
"""

from dance_any_beat.server.app import ServerSettings, create_app, serve

__all__ = ["ServerSettings", "create_app", "serve"]
