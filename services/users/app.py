"""users: accounts in PostgreSQL; passwords kept as PBKDF2 hashes."""
import hashlib
import hmac
import os

from psycopg.errors import UniqueViolation

from shoplib import db
from shoplib.web import App, HTTPError

app = App("users")
app.health_checks.append(db.ping)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 100_000)
    return f"{salt.hex()}${digest.hex()}"


def public(row: dict) -> dict:
    return {"id": row["id"], "email": row["email"], "name": row["name"]}


@app.route("POST", "/users")
def signup(request):
    body = request.json()
    email, password, name = body.get("email", "").strip().lower(), body.get("password", ""), body.get("name", "")
    if "@" not in email or len(password) < 8:
        raise HTTPError(400, "an email and a password of 8 or more characters are required")
    try:
        row = db.one("INSERT INTO users (email, name, password_hash) VALUES (%s, %s, %s) RETURNING *",
                     email, name or email.split("@")[0], hash_password(password))
    except UniqueViolation:
        raise HTTPError(409, f"{email} already has an account") from None
    return 201, public(row)


@app.route("POST", "/users/verify")
def verify(request):
    body = request.json()
    row = db.one("SELECT * FROM users WHERE email = %s", body.get("email", "").strip().lower())
    if row:
        salt = bytes.fromhex(row["password_hash"].split("$")[0])
        if hmac.compare_digest(hash_password(body.get("password", ""), salt), row["password_hash"]):
            return public(row)
    raise HTTPError(401, "wrong email or password")


@app.route("GET", "/users/{user_id}")
def get_user(request):
    row = db.one("SELECT * FROM users WHERE id = %s", int(request.params["user_id"]))
    if not row:
        raise HTTPError(404, "no such user")
    return public(row)


app.serve()
