"""payments: charges cards through the external payment provider (a recorded mock in tests)."""
import json
import urllib.error
import urllib.parse
import urllib.request

from shoplib.config import env
from shoplib.web import App, HTTPError

PROVIDER_URL = env("PAYMENT_PROVIDER_URL")
API_KEY = env("PAYMENT_API_KEY")
app = App("payments")


@app.route("POST", "/charges")
def charge(request):
    body = request.json()
    # The provider's API takes form-encoded charges and a secret key (never logged).
    form = urllib.parse.urlencode({"amount": body["amount_cents"], "currency": body["currency"],
                                   "source": body["source"]}).encode()
    provider = urllib.request.Request(
        f"{PROVIDER_URL}/v1/charges", data=form, method="POST",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/x-www-form-urlencoded",
                 "Idempotency-Key": body["order_ref"]})
    try:
        with urllib.request.urlopen(provider, timeout=15) as response:
            result = json.loads(response.read())
        return 201, {"id": result["id"], "status": result["status"], "amount_cents": result["amount"]}
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", {})
        if exc.code == 402:
            return 402, {"status": "declined", "code": detail.get("code"), "message": detail.get("message")}
        raise HTTPError(502, f"payment provider answered {exc.code}", provider=detail) from None
    except (urllib.error.URLError, OSError) as exc:
        raise HTTPError(503, f"cannot reach the payment provider: {exc}") from None


app.serve()
