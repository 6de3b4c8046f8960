"""esi-webhook: the client cluster's mutating admission webhook (see docs/webhook.md)."""
