"""Webhook delivery, on its own: what is sent, how it is signed, where it may go, and when.

`payload` builds the JSON body (never a key, secret, passphrase or ciphertext); `signing`
signs it the Standard Webhooks way; `policy` says which URLs may receive webhooks and
`addresses` which IP addresses; `network` resolves once, checks every address and connects
to the checked one; `delivery` sends one attempt and says how it went; `backoff` says when
to try again. Nothing here imports the rest of the service or a web framework, so the outbox
and its sender loop can use it from anywhere.
"""

from api.webhooks.addresses import address_refusal
from api.webhooks.backoff import delay_before_attempt, retry_window_closed
from api.webhooks.delivery import DeliveryOutcome, DeliveryTimeouts, WebhookSender, deliver
from api.webhooks.network import Resolver, system_resolver
from api.webhooks.payload import WebhookEvent, webhook_body
from api.webhooks.policy import DestinationPolicy, check_url
from api.webhooks.signing import new_signing_secret, signature_headers

__all__ = [
    "DeliveryOutcome",
    "DeliveryTimeouts",
    "DestinationPolicy",
    "Resolver",
    "WebhookEvent",
    "WebhookSender",
    "address_refusal",
    "check_url",
    "delay_before_attempt",
    "deliver",
    "new_signing_secret",
    "retry_window_closed",
    "signature_headers",
    "system_resolver",
    "webhook_body",
]
