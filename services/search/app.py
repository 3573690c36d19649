"""search: full-text-ish product search over the catalog, cached in Redis."""
import json
import urllib.parse

from shoplib import cache
from shoplib.config import env
from shoplib.web import App, call, expect

CATALOG_URL = env("CATALOG_URL")
CACHE_SECONDS = int(env("SEARCH_CACHE_SECONDS", "30"))
app = App("search")
app.health_checks.append(cache.ping)


@app.route("GET", "/search")
def search(request):
    terms = urllib.parse.unquote_plus(request.query.get("q", "")).lower().split()
    key = "search:" + " ".join(sorted(terms))
    cached = cache.client().get(key)
    if cached:
        return {**json.loads(cached), "cached": True}
    products = expect(call("GET", f"{CATALOG_URL}/products"))["products"]

    def score(product):
        text = f"{product['name']} {product['description']} {product['category']} {product['sku']}".lower()
        return sum(text.count(term) for term in terms)

    hits = sorted((p for p in products if score(p) > 0), key=lambda p: (-score(p), p["sku"]))
    result = {"query": " ".join(terms), "results": hits}
    cache.client().setex(key, CACHE_SECONDS, json.dumps(result))
    return {**result, "cached": False}


app.serve()
