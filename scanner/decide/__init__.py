"""decide: one verdict per (role, region, required action[, key]) of an account.

Pure: works on the dataclasses of scanner.model, never calls AWS or the database.
Every verdict carries the scenario it was decided from (replayable with
`vaultscan explain`), the engine's layer-by-layer explanation, a one-sentence message
and the minimal fix, all read from the engine's typed result. The IAM policy
simulator's answer is compared with the engine's decision over the layers the
simulator sees; a mismatch is stored, never hidden.

Modules: scenarios (the request and the scenario object), verdict (one request),
culprit (which policy, level, statement), messages, key_state, crosscheck (the
simulator), account (every verdict of one account), naming.
"""

from scanner.decide.account import GLOBAL_REGION, decide_account
from scanner.decide.crosscheck import iam_side_decision
from scanner.decide.key_state import key_state_result
from scanner.decide.naming import key_policy_name, level_labels, org_policy_name
from scanner.decide.scenarios import build_scenario
from scanner.model import KEY_STATE_CHECK, ROLE_PRESENT_CHECK

__all__ = [
    "GLOBAL_REGION",
    "KEY_STATE_CHECK",
    "ROLE_PRESENT_CHECK",
    "build_scenario",
    "decide_account",
    "iam_side_decision",
    "key_policy_name",
    "key_state_result",
    "level_labels",
    "org_policy_name",
]
