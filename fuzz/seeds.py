#!/usr/bin/env python3
"""Rebuild the seed corpora in fuzz/corpus/<target>/ from the repository's fixtures,
shipped rules and configs (run from anywhere: python3 fuzz/seeds.py).

Input formats are described in fuzz/src/lib.rs and docs/fuzzing.md. Each seed is named
after what it came from, so a corpus directory reads like the fixtures it mirrors.
"""
import json
import os
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def read(*path):
    with open(os.path.join(ROOT, *path), "rb") as f:
        return f.read()


def webhook(flags, headers, body):
    """Flags byte, `Name: value` lines, an empty line, the body."""
    head = "".join(f"{k}: {v}\n" for k, v in headers.items())
    return bytes([flags]) + head.encode() + b"\n" + body


def cases(fixtures):
    manifest = json.loads(read(fixtures, "cases.json"))
    for case in manifest["cases"]:
        yield case["name"], case.get("headers", {}), read(fixtures, case["body"])


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for target in ("shopify_webhook", "square_webhook", "woocommerce_webhook",
                   "declarative_definition", "rules_file", "config_file"):
        shutil.rmtree(os.path.join(CORPUS, target), ignore_errors=True)

    # Webhooks: every fixture case with its recorded headers and signature (flags 0),
    # plus each body re-signed by the harness (flags 1).
    for target, fixtures in (("shopify_webhook", "integrations/shopify/fixtures"),
                             ("square_webhook", "integrations/square/fixtures"),
                             ("woocommerce_webhook", "integrations/declarative/fixtures/woocommerce")):
        for name, headers, body in cases(fixtures):
            write(target, name, webhook(0, headers, body))
            write(target, name + ".signed", webhook(1, headers, body))
    for name, headers, body in cases("integrations/shopify/fixtures/earn-on-create"):
        write("shopify_webhook", "earn-on-create." + name, webhook(3, headers, body))

    # Declarative definitions: each shipped or example definition followed by each of its
    # fixture requests.
    for toml, fixtures in (("integrations/declarative/woocommerce.toml",
                            "integrations/declarative/fixtures/woocommerce"),
                           ("integrations/declarative/fixtures/acme/acme.toml",
                            "integrations/declarative/fixtures/acme")):
        text = read(toml)
        stem = os.path.basename(toml)[:-5]
        write("declarative_definition", stem, text)
        for name, headers, body in cases(fixtures):
            write("declarative_definition", f"{stem}.{name}", text + b"\0" + webhook(1, headers, body))

    # Rules files: the shipped program, the examples, and one using every condition and
    # effect kind (as benches/score.rs generates).
    write("rules_file", "rules.toml", read("config/rules.toml"))
    for f in sorted(os.listdir(os.path.join(ROOT, "config/examples"))):
        write("rules_file", f, read("config/examples", f))
    write("rules_file", "every-kind.toml", EVERY_KIND.encode())

    # Config files: the shipped config, the config module's test snippets, one with every
    # table, and environment overrides.
    write("config_file", "loyaltyd.toml", read("config/loyaltyd.toml"))
    for i, snippet in enumerate(CONFIGS):
        write("config_file", f"snippet-{i}.toml", snippet.encode())


EVERY_KIND = """[earn]
points_per_unit = "1"
rounding = "round"
combine = "stack"

[eligible]
subtract_discounts = true
include_shipping = true
gift_cards = false
exclude_skus = ["SKU-99", "DEPOSIT"]

[caps]
per_order = 5000
per_member_day = 10000
per_member_month = 50000

[points]
pending_days = 14
expiry = "inactivity"
expiry_days = 365
negative_balance = "clamp"

[tiers]
basis = "spend"
window = "rolling_12_months"
levels = [{ name = "silver", threshold = "100" }, { name = "gold", threshold = "500.00" }]

[bonuses]
signup = 50
birthday = 100
referral_referrer = 200
referral_referee = 100

[[rules]]
id = "weekend"
when = { days = ["sat", "sun"], hours = "08:00-20:00" }
effect = { multiplier = "2" }

[[rules]]
id = "beans"
when = { skus = ["BEANS-250"], vendors = ["vendor-1"], product_types = ["Coffee"], collections = ["beans"] }
effect = { points_per_unit = "0.5", per = "line" }

[[rules]]
id = "big"
when = { min_spend = "50.00", channels = ["pos", "web"], tiers = ["gold"], tags = ["card"], locations = ["loc-1"] }
effect = { bonus = 25 }

[[rules]]
id = "season"
when = { from = "2026-01-01", to = "2026-12-31", adapters = ["square"], first_purchase = true, product_ids = ["p1", "p2"] }
effect = { cash_back_percent = "1.5" }

[[rewards]]
id = "free-coffee"
name = "Free coffee"
points = 50

[[rewards]]
id = "five-off"
name = "$5 off"
points = 500
type = "amount_off"
value = "5.00"
"""

CONFIGS = [
    # The config module's tests.
    '[server]\nlisten = "127.0.0.1:8080"\nadmin_token = "secret-token"\n\n[storage]\npath = "data"\n\n'
    '[[shops]]\nid = "a"\ncurrency = "USD"\n\n[[shops]]\nid = "b"\ncurrency = "EUR"\n\n[shops.shopify]\nwebhook_secret = "x"\n',
    '[server]\nadmin_token = "in-the-toml-1"\n[[shops]]\nid = "demo"\ncurrency = "USD"\n'
    '[shops.shopify]\nwebhook_secret_file = "admin.secret"\n'
    '\0LOYALTYD__SERVER__ADMIN_TOKEN_FILE=admin.secret\n',
    '[server]\nadmin_token = "long-enough"\n[[shops]]\nid = "demo"\ncurrency = "dollars"\n',
    # Every table.
    """[server]
listen = "0.0.0.0:0"
admin_token = "demo-admin-token"
max_body_bytes = 65536
request_timeout_secs = 5

[[tokens]]
name = "reports"
token = "a-reader-token-0123456789"
role = "read"
shops = ["demo"]

[[tokens]]
name = "till"
token = "a-writer-token-0123456789"
role = "write"
shops = ["*"]

[storage]
path = "data"
durable_acks = true

[jobs]
interval_secs = 30

[notify]
max_sms_segments = 3
max_age_secs = 3600
retry_base_ms = 500
retry_cap_secs = 60
coalesce_secs = 10
quiet_hours = "21:00-08:00"
expiry_warning_days = 7
concurrency = 4

[notify.sms]
provider = "twilio"
base_url = "http://127.0.0.1:9"
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token = "twilio-auth-token"
from = "+15005550006"
rate_per_sec = 5
timeout_secs = 3
inbound_url = "https://loyalty.example.com/webhooks/demo/twilio/inbound"

[notify.email]
provider = "smtp"
host = "127.0.0.1"
port = 2525
tls = "none"
from = "points@example.com"
from_name = "Demo Coffee"

[[shops]]
id = "demo"
name = "Demo Coffee Roasters"
currency = "JPY"
timezone = "Asia/Tokyo"
country = "JP"
point_value = "1"
rules = "rules.toml"
quiet_hours = "off"

[shops.shopify]
webhook_secret = "demo-shopify-secret"
previous_webhook_secrets = ["old-secret"]
earn_on = "create"
replay_tolerance_secs = 3600

[shops.square]
signature_key = "demo-square-signature-key"
previous_signature_keys = ["old-key"]
notification_url = "https://loyalty.example.com/webhooks/demo/square"
access_token = "EAAA-token"
orders_base_url = "https://connect.squareupsandbox.com"
square_version = "2026-05-20"
orders_timeout_ms = 1500
orders_retries = 2

[shops.woocommerce]
webhook_secret = "demo-woocommerce-secret"
previous_webhook_secrets = []
\0LOYALTYD__SERVER__LISTEN=127.0.0.1:8081
LOYALTYD__SHOPS__0__CURRENCY=USD
LOYALTYD__NOTIFY__EMAIL__PROVIDER=sendgrid
LOYALTYD__NOTIFY__EMAIL__API_KEY=SG.key
""",
]

if __name__ == "__main__":
    main()
