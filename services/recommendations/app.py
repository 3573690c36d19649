"""recommendations: products from the categories a user buys, else the best sellers."""
import json

from shoplib import cache, db
from shoplib.web import App

app = App("recommendations")
app.health_checks += [db.ping, cache.ping]


@app.route("GET", "/recommendations/{user_id}")
def recommend(request):
    user_id = int(request.params["user_id"])
    key = f"recommendations:{user_id}"
    cached = cache.client().get(key)
    if cached:
        return json.loads(cached)
    rows = db.query(
        """SELECT p.* FROM products p
           WHERE p.category IN (SELECT p2.category FROM order_items i JOIN orders o ON o.id = i.order_id
                                JOIN products p2 ON p2.sku = i.sku WHERE o.user_id = %s AND o.status = 'paid')
             AND p.sku NOT IN (SELECT i.sku FROM order_items i JOIN orders o ON o.id = i.order_id
                               WHERE o.user_id = %s AND o.status = 'paid')
           ORDER BY p.price_cents LIMIT 4""", user_id, user_id)
    reason = "from categories you buy"
    if not rows:
        rows = db.query("""SELECT p.*, coalesce(sum(i.qty), 0) AS sold FROM products p
                           LEFT JOIN order_items i ON i.sku = p.sku GROUP BY p.sku
                           ORDER BY sold DESC, p.sku LIMIT 4""")
        reason = "best sellers"
    result = {"user_id": user_id, "reason": reason, "products": [r["sku"] for r in rows]}
    cache.client().setex(key, 10, json.dumps(result))
    return result


app.serve()
