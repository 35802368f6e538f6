"""Which service authorizer answers a request: KMS keys, IAM role trust, or the generic
one."""

from __future__ import annotations

from functools import lru_cache

from scanner.policy.authorizer import GENERIC, ResourceAuthorizer
from scanner.policy.kms import KMS_KEY, is_key_request
from scanner.policy.trust import ROLE_TRUST, is_trust_request


@lru_cache(maxsize=4096)
def authorizer_for(action: str, resource: str) -> ResourceAuthorizer:
    if is_key_request(action, resource):
        return KMS_KEY
    if is_trust_request(action, resource):
        return ROLE_TRUST
    return GENERIC
