"""cart: each user's cart, a Redis hash of sku -> quantity; items checked against the catalog."""
from shoplib import cache
from shoplib.config import env
from shoplib.web import App, HTTPError, call

CATALOG_URL = env("CATALOG_URL")
app = App("cart")
app.health_checks.append(cache.ping)


def _items(user: str) -> list[dict]:
    return [{"sku": sku, "qty": int(qty)} for sku, qty in sorted(cache.client().hgetall(f"cart:{user}").items())]


@app.route("GET", "/carts/{user}")
def get_cart(request):
    return {"user": request.params["user"], "items": _items(request.params["user"])}


@app.route("POST", "/carts/{user}/items")
def add(request):
    body = request.json()
    sku, qty = body.get("sku"), int(body.get("qty", 1))
    if qty < 1:
        raise HTTPError(400, "qty must be at least 1")
    status, _ = call("GET", f"{CATALOG_URL}/products/{sku}")
    if status != 200:
        raise HTTPError(404, f"no product {sku}")
    cache.client().hincrby(f"cart:{request.params['user']}", sku, qty)
    return 201, {"user": request.params["user"], "items": _items(request.params["user"])}


@app.route("DELETE", "/carts/{user}")
def clear(request):
    cache.client().delete(f"cart:{request.params['user']}")
    return {"user": request.params["user"], "items": []}


app.serve()
