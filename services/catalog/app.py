"""catalog: the products and their prices, in PostgreSQL."""
from shoplib import db
from shoplib.web import App, HTTPError

app = App("catalog")
app.health_checks.append(db.ping)


@app.route("GET", "/products")
def products(request):
    return {"products": db.query("SELECT * FROM products ORDER BY category, sku")}


@app.route("GET", "/products/{sku}")
def product(request):
    row = db.one("SELECT * FROM products WHERE sku = %s", request.params["sku"])
    if not row:
        raise HTTPError(404, f"no product {request.params['sku']}")
    return row


@app.route("POST", "/prices")
def prices(request):
    skus = request.json().get("skus", [])
    rows = db.query("SELECT sku, price_cents FROM products WHERE sku = ANY(%s)", skus)
    return {row["sku"]: row["price_cents"] for row in rows}


app.serve()
