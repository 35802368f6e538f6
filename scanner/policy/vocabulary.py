"""The engine's vocabulary, defined once: decisions, layers, key managers, and the
reasons a layer was decided without (or beyond) a matching statement.

Each is a StrEnum, so a value compares equal to (and serialises as) the string the
scenario format and the database use: `Decision.ALLOWED == "allowed"`.
"""

from __future__ import annotations

from enum import StrEnum


class Decision(StrEnum):
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitDeny"
    IMPLICIT_DENY = "implicitDeny"


class Layer(StrEnum):
    SCP = "scp"
    RCP = "rcp"
    PERMISSIONS_BOUNDARY = "permissions_boundary"
    IDENTITY = "identity"
    RESOURCE_POLICY = "resource_policy"


# The order in which an explicit Deny names its deciding layer.
LAYER_ORDER: tuple[Layer, ...] = (
    Layer.SCP,
    Layer.RCP,
    Layer.PERMISSIONS_BOUNDARY,
    Layer.IDENTITY,
    Layer.RESOURCE_POLICY,
)


class KeyManager(StrEnum):
    """A KMS key's `KeyManager` (AWS KMS API Reference: KeyMetadata)."""

    AWS = "AWS"
    CUSTOMER = "CUSTOMER"


class Reason(StrEnum):
    """Why a layer has the decision it has when no (or not only) statements say so.
    Rendered as a sentence by `scanner.policy.notes`; never parsed back."""

    NO_ALLOW = "no-allow"
    NO_ALLOW_AT_LEVEL = "no-allow-at-level"
    NO_PERMISSION_NEEDED = "no-permission-needed"
    SERVICE_LINKED_ROLE = "service-linked-role"
    RCP_SERVICE_UNSUPPORTED = "rcp-service-unsupported"
    RCP_RETIRE_GRANT = "rcp-retire-grant"
    RCP_AWS_MANAGED_KEY = "rcp-aws-managed-key"
    KEY_POLICY_RETIRE_GRANT = "key-policy-retire-grant"
    NO_KEY_POLICY = "no-key-policy"
    NO_TRUST_POLICY = "no-trust-policy"
    NO_RESOURCE_POLICY = "no-resource-policy"
    NO_ACCOUNT_TRUST = "no-account-trust"
    ACCOUNT_TRUST_CONDITIONS_UNMET = "account-trust-conditions-unmet"
    NO_ROLE_TRUST = "no-role-trust"


class MissReason(StrEnum):
    """Why a statement whose Action and Resource match did not apply."""

    PRINCIPAL = "principal"
    CONDITION = "condition"
