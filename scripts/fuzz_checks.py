"""Schemathesis checks of this service's own contract, loaded by scripts/fuzz-openapi.sh
(SCHEMATHESIS_HOOKS=fuzz_checks).

`session_cookie_is_enforced` stands in for schemathesis' `ignored_auth`, which the script
turns off: that check wants 401 or 403 for an invalid credential, while this service answers
a cookie that does not name a live session (forged, expired, logged out) with 404 "Session not
found or expired", as its README and OpenAPI document say and its existing clients rely on.
This check keeps the rest of `ignored_auth`'s intent: every operation that requires the
session cookie answers 403 without it, and 404, never a success, with a forged one.
"""

import requests
import schemathesis

FORGED = "session_id=00000000-0000-4000-8000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
_checked = set()


def _requires_cookie(case):
    operation = case.operation
    security = operation.definition.raw.get(
        "security", operation.schema.raw_schema.get("security", [])
    )
    return bool(security) and {} not in security


@schemathesis.check
def session_cookie_is_enforced(ctx, response, case):
    if not _requires_cookie(case) or case.operation.label in _checked:
        return None
    _checked.add(case.operation.label)
    request = response.request
    headers = {k: v for k, v in request.headers.items() if k.lower() != "cookie"}
    for cookie, expected in ((None, 403), (FORGED, 404)):
        probe_headers = dict(headers)
        if cookie:
            probe_headers["Cookie"] = cookie
        probe = requests.request(
            request.method, request.url, headers=probe_headers, data=request.body, timeout=10
        )
        if probe.status_code != expected:
            what = "a forged session cookie" if cookie else "no session cookie"
            raise AssertionError(
                f"{case.operation.label} with {what} answered {probe.status_code}, expected {expected}"
            )
    return None
