"""orders: checkout. Reserve stock, charge, ship, confirm by email (queued); undo on decline."""
import json
import uuid

from shoplib import cache, db
from shoplib.config import env
from shoplib.web import App, HTTPError, call, expect

CART_URL = env("CART_URL")
CATALOG_URL = env("CATALOG_URL")
INVENTORY_URL = env("INVENTORY_URL")
PAYMENTS_URL = env("PAYMENTS_URL")
SHIPPING_URL = env("SHIPPING_URL")
CURRENCY = env("CURRENCY", "eur")
app = App("orders")
app.health_checks += [db.ping, cache.ping]


@app.route("POST", "/orders")
def place(request):
    body = request.json()
    user_id, source = int(body["user_id"]), body.get("payment_source", "tok_visa")
    items = expect(call("GET", f"{CART_URL}/carts/{user_id}"))["items"]
    if not items:
        raise HTTPError(400, "the cart is empty")
    prices = expect(call("POST", f"{CATALOG_URL}/prices", {"skus": [i["sku"] for i in items]}))
    total = sum(prices[i["sku"]] * i["qty"] for i in items)
    ref = "ord_" + uuid.uuid4().hex[:12]
    expect(call("POST", f"{INVENTORY_URL}/reservations", {"order_ref": ref, "items": items}), 201)
    status, payment = call("POST", f"{PAYMENTS_URL}/charges",
                           {"order_ref": ref, "amount_cents": total, "currency": CURRENCY, "source": source})
    if status != 201:
        call("POST", f"{INVENTORY_URL}/reservations/{ref}/release")
        order = _save(ref, user_id, total, items, prices, "payment_failed", None,
                      (payment or {}).get("code") or f"payments answered {status}")
        return 402, order
    expect(call("POST", f"{INVENTORY_URL}/reservations/{ref}/commit"))
    shipment = expect(call("POST", f"{SHIPPING_URL}/shipments",
                           {"order_ref": ref, "items": items, "total_cents": total}), 201)
    order = _save(ref, user_id, total, items, prices, "paid", payment["id"], None)
    cache.client().lpush("queue:notifications", json.dumps(
        {"template": "order_confirmation", "order_ref": ref, "user_id": user_id, "total_cents": total}))
    call("DELETE", f"{CART_URL}/carts/{user_id}")
    return 201, {**order, "shipment": shipment["id"]}


def _save(ref, user_id, total, items, prices, status, payment_id, failure) -> dict:
    with db.transaction() as cursor:
        cursor.execute("INSERT INTO orders (ref, user_id, total_cents, currency, status, payment_id, failure) "
                       "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
                       (ref, user_id, total, CURRENCY, status, payment_id, failure))
        order = cursor.fetchone()
        for item in items:
            cursor.execute("INSERT INTO order_items (order_id, sku, qty, price_cents) VALUES (%s, %s, %s, %s)",
                           (order["id"], item["sku"], item["qty"], prices[item["sku"]]))
    return {**order, "created_at": order["created_at"].isoformat(), "items": items}


@app.route("GET", "/orders")
def list_orders(request):
    rows = db.query("SELECT ref, total_cents, currency, status, failure FROM orders WHERE user_id = %s ORDER BY id",
                    int(request.query.get("user_id", 0)))
    return {"orders": rows}


app.serve()
