"""notifications: sends emails through the external email provider (a recorded mock in tests)."""
from shoplib import db
from shoplib.config import env
from shoplib.web import App, HTTPError, call

PROVIDER_URL = env("EMAIL_PROVIDER_URL")
API_KEY = env("EMAIL_API_KEY")
SENDER = env("EMAIL_FROM", "orders@shop.example")
app = App("notifications")
app.health_checks.append(db.ping)
SUBJECTS = {"order_confirmation": "Your order {order_ref} is confirmed"}


@app.route("POST", "/send")
def send(request):
    body = request.json()
    subject = SUBJECTS[body["template"]].format(**body)
    message = {
        "personalizations": [{"to": [{"email": body["to"]}]}],
        "from": {"email": SENDER},
        "subject": subject,
        "content": [{"type": "text/plain",
                     "value": f"Thank you! Order {body['order_ref']}: {body['total_cents'] / 100:.2f} EUR."}],
    }
    status, answer = call("POST", f"{PROVIDER_URL}/v3/mail/send", message,
                          headers={"Authorization": f"Bearer {API_KEY}"})
    if status != 202:
        raise HTTPError(502, f"email provider answered {status}", provider=answer)
    db.query("INSERT INTO notifications (order_ref, recipient, template) VALUES (%s, %s, %s) RETURNING id",
             body["order_ref"], body["to"], body["template"])
    return 201, {"sent": True, "to": body["to"], "subject": subject}


app.serve()
