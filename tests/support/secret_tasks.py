"""A task with secrets among its arguments, for the masking tests (workers load it with --include)."""

from __future__ import annotations

import hashlib
import time

from celery import shared_task

SIGN_IN = "tests.partner_sign_in"
INCLUDE = ("--include", __name__)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@shared_task(name=SIGN_IN)
def partner_sign_in(account: str, credentials: dict, options: dict | None = None,
                    hold: float = 0.0) -> dict:
    """Fail while the billing partner is down; else report digests of the secrets received
    (never the secrets themselves) and the options as received."""
    from demo.models import PartnerStatus

    time.sleep(hold)
    if PartnerStatus.is_down("billing"):
        raise RuntimeError(f"billing partner is down: cannot sign in account {account}")
    options = options or {}
    return {"account": account, "digests": [digest(credentials.get("password", "")),
                                            digest(options.get("api_key", ""))],
            "region": options.get("region")}
