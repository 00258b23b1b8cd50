"""Access control lists, sent to the hosts of the endpoints that use them (directly or through
their subnet), once per host however many local endpoints use them:

``acl/<accessControlList instanceId>``  the default action per direction
``aclRule/<aclRule instanceId>``        one rule: its ACL, direction, priority, action,
                                        protocol, prefixes, port ranges (a rule change sends
                                        that rule, not the whole list)
"""

from __future__ import annotations

from controller import protocol
from controller.policy.model import ACL as ACL_GROUP
from controller.policy.model import Model
from controller.policy.objects.base import Body, Computed, Keys, ObjectKind
from controller.policy.topology import Acl

# The members of an aclRule's properties that shape what a host enforces.
RULE_MEMBERS = (
    "type",
    "priority",
    "action",
    "protocol",
    "sourceAddressPrefix",
    "sourcePortRange",
    "destinationAddressPrefix",
    "destinationPortRange",
    "logging",
)


def rule_key(acl_key: str, rule_id: str) -> str:
    return f"{acl_key}#{rule_id}"


def _acl(model: Model, acl_key: str) -> Computed | None:
    found = model.acls.get(acl_key)
    if found is None:
        return None
    hosts = model.acl_hosts(acl_key)
    if not hosts:
        return None
    body: Body = {
        "inboundDefaultAction": found.inbound_default,
        "outboundDefaultAction": found.outbound_default,
    }
    return Computed(protocol.object_key(protocol.ACL, found.id), body, frozenset(hosts))


def _rule(model: Model, key: str) -> Computed | None:
    acl_key, _, rule_id = key.rpartition("#")
    found = model.acls.get(acl_key)
    rule = found.rules_by_id.get(rule_id) if found else None
    if found is None or rule is None:
        return None
    hosts = model.acl_hosts(acl_key)
    if not hosts:
        return None
    body: Body = {"acl": found.id} | {m: rule.get(m) for m in RULE_MEMBERS}
    return Computed(protocol.object_key(protocol.ACL_RULE, rule_id), body, frozenset(hosts))


def _rules_of(acl: Acl | None) -> Keys:
    return [rule_key(acl.key, rule["id"]) for rule in acl.rules] if acl else []


ACL = ObjectKind(
    protocol.ACL,
    _acl,
    keys=lambda model: model.acls,
    shaped_by={Acl: lambda _, acl: (acl.key,)},
    follows={ACL_GROUP: lambda _, acl_key: (acl_key,)},
)
ACL_RULE = ObjectKind(
    protocol.ACL_RULE,
    _rule,
    keys=lambda model: [key for acl in model.acls.values() for key in _rules_of(acl)],
    shaped_by={Acl: lambda _, acl: _rules_of(acl)},
    follows={ACL_GROUP: lambda model, acl_key: _rules_of(model.acls.get(acl_key))},
)
