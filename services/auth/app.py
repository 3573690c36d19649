"""auth: logs users in (checked by the users service) and keeps sessions in Redis."""
import json
import secrets

from shoplib import cache
from shoplib.config import env
from shoplib.web import App, HTTPError, call, expect

USERS_URL = env("USERS_URL")
SESSION_SECONDS = int(env("SESSION_SECONDS", "3600"))
app = App("auth")
app.health_checks.append(cache.ping)


@app.route("POST", "/login")
def login(request):
    user = expect(call("POST", f"{USERS_URL}/users/verify", request.json()))
    token = secrets.token_urlsafe(24)
    cache.client().setex(f"session:{token}", SESSION_SECONDS, json.dumps(user))
    return {"token": token, "user": user}


@app.route("GET", "/verify")
def verify(request):
    session = cache.client().get(f"session:{request.bearer}") if request.bearer else None
    if not session:
        raise HTTPError(401, "not logged in, or the session expired")
    return {"user": json.loads(session)}


app.serve()
