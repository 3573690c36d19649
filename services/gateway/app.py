"""gateway: the shop's public API. Authenticates callers and routes to the services."""
from shoplib.config import env
from shoplib.web import App, HTTPError, call

URL = {name: env(f"{name.upper()}_URL") for name in
       ("auth", "users", "catalog", "search", "inventory", "cart", "orders", "recommendations", "reports")}
app = App("gateway")


def user_of(request) -> dict:
    status, body = call("GET", f"{URL['auth']}/verify", headers={"Authorization": request.headers.get("Authorization", "")})
    if status != 200:
        raise HTTPError(401, "log in first: POST /api/login, then send 'Authorization: Bearer TOKEN'")
    return body["user"]


@app.route("POST", "/api/signup")
def signup(request):
    return call("POST", f"{URL['users']}/users", request.json())


@app.route("POST", "/api/login")
def login(request):
    return call("POST", f"{URL['auth']}/login", request.json())


@app.route("GET", "/api/products")
def products(request):
    return call("GET", f"{URL['catalog']}/products")


@app.route("GET", "/api/products/{sku}")
def product(request):
    return call("GET", f"{URL['catalog']}/products/{request.params['sku']}")


@app.route("GET", "/api/search")
def search(request):
    return call("GET", f"{URL['search']}/search?q={request.query.get('q', '')}")


@app.route("GET", "/api/stock/{sku}")
def stock(request):
    return call("GET", f"{URL['inventory']}/stock/{request.params['sku']}")


@app.route("GET", "/api/cart")
def cart(request):
    return call("GET", f"{URL['cart']}/carts/{user_of(request)['id']}")


@app.route("POST", "/api/cart/items")
def add_to_cart(request):
    return call("POST", f"{URL['cart']}/carts/{user_of(request)['id']}/items", request.json())


@app.route("POST", "/api/orders")
def place_order(request):
    body = request.json()
    return call("POST", f"{URL['orders']}/orders",
                 {"user_id": user_of(request)["id"], "payment_source": body.get("payment_source", "tok_visa")})


@app.route("GET", "/api/orders")
def my_orders(request):
    return call("GET", f"{URL['orders']}/orders?user_id={user_of(request)['id']}")


@app.route("GET", "/api/recommendations")
def recommendations(request):
    return call("GET", f"{URL['recommendations']}/recommendations/{user_of(request)['id']}")


@app.route("GET", "/api/reports/orders")
def reports(request):
    return call("GET", f"{URL['reports']}/reports/orders")


app.serve()
