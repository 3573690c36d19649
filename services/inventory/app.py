"""inventory: stock levels; reservations that hold stock for an order until it is paid."""
from shoplib import db
from shoplib.web import App, HTTPError

app = App("inventory")
app.health_checks.append(db.ping)


@app.route("GET", "/stock/{sku}")
def stock(request):
    row = db.one("SELECT * FROM stock WHERE sku = %s", request.params["sku"])
    if not row:
        raise HTTPError(404, f"no stock record for {request.params['sku']}")
    return row


@app.route("POST", "/reservations")
def reserve(request):
    body = request.json()
    ref, items = body["order_ref"], body["items"]
    with db.transaction() as cursor:  # all items or none
        for item in sorted(items, key=lambda i: i["sku"]):
            cursor.execute("SELECT available FROM stock WHERE sku = %s FOR UPDATE", (item["sku"],))
            row = cursor.fetchone()
            if row is None or row["available"] < item["qty"]:
                raise HTTPError(409, f"not enough {item['sku']} in stock", sku=item["sku"])
            cursor.execute("UPDATE stock SET available = available - %s, reserved = reserved + %s WHERE sku = %s",
                           (item["qty"], item["qty"], item["sku"]))
            cursor.execute("INSERT INTO reservations (order_ref, sku, qty) VALUES (%s, %s, %s)",
                           (ref, item["sku"], item["qty"]))
    return 201, {"order_ref": ref, "state": "held"}


def _settle(ref: str, state: str, restore: bool) -> dict:
    with db.transaction() as cursor:
        cursor.execute("UPDATE reservations SET state = %s WHERE order_ref = %s AND state = 'held' RETURNING sku, qty",
                       (state, ref))
        for row in cursor.fetchall():
            available = row["qty"] if restore else 0
            cursor.execute("UPDATE stock SET available = available + %s, reserved = reserved - %s WHERE sku = %s",
                           (available, row["qty"], row["sku"]))
    return {"order_ref": ref, "state": state}


@app.route("POST", "/reservations/{ref}/release")
def release(request):
    return _settle(request.params["ref"], "released", restore=True)


@app.route("POST", "/reservations/{ref}/commit")
def commit(request):
    return _settle(request.params["ref"], "committed", restore=False)


app.serve()
