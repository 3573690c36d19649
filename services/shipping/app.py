"""shipping: quotes and shipment labels for paid orders."""
from shoplib import db
from shoplib.web import App

app = App("shipping")
app.health_checks.append(db.ping)
BASE_CENTS, PER_ITEM_CENTS, FREE_FROM_CENTS = 495, 50, 5000


def quote(items: list[dict], total_cents: int) -> int:
    if total_cents >= FREE_FROM_CENTS:
        return 0
    return BASE_CENTS + PER_ITEM_CENTS * sum(item["qty"] for item in items)


@app.route("POST", "/quotes")
def quotes(request):
    body = request.json()
    return {"cost_cents": quote(body["items"], body.get("total_cents", 0))}


@app.route("POST", "/shipments")
def create(request):
    body = request.json()
    row = db.one("INSERT INTO shipments (order_ref, cost_cents) VALUES (%s, %s) "
                 "ON CONFLICT (order_ref) DO UPDATE SET order_ref = EXCLUDED.order_ref RETURNING *",
                 body["order_ref"], quote(body["items"], body.get("total_cents", 0)))
    return 201, row


app.serve()
