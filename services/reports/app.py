"""reports: order figures for the back office, straight from the orders tables."""
from shoplib import db
from shoplib.web import App

app = App("reports")
app.health_checks.append(db.ping)


@app.route("GET", "/reports/orders")
def orders(request):
    totals = db.one("""SELECT count(*) AS orders, coalesce(sum(total_cents) FILTER (WHERE status = 'paid'), 0)
                       AS revenue_cents FROM orders""")
    by_status = {r["status"]: r["n"] for r in db.query("SELECT status, count(*) AS n FROM orders GROUP BY status")}
    recent = db.query("""SELECT o.ref, o.status, o.total_cents, u.email,
                                (SELECT count(*) FROM notifications n WHERE n.order_ref = o.ref) AS emails_sent
                         FROM orders o JOIN users u ON u.id = o.user_id ORDER BY o.id DESC LIMIT 20""")
    return {**totals, "by_status": by_status, "recent": recent}


app.serve()
