"""Access control lists, sent to the hosts of the endpoints that use them (directly or through
their subnet), once per host however many local endpoints use them:

``acl/<accessControlList instanceId>``  the default action per direction
``aclRule/<aclRule instanceId>``        one rule: its ACL, direction, priority, action,
                                        protocol, prefixes, port ranges (a rule change sends
                                        and recomputes that rule, not the whole list)
"""

from __future__ import annotations

from controller import protocol
from controller.policy.model import ACL as ACL_GROUP
from controller.policy.model import Model
from controller.policy.objects.base import Body, Computed, Keys, ObjectKind
from controller.policy.topology import Acl, AclRule

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
    rule = model.acl_rules.get(key)
    found = model.acls.get(rule.acl) if rule else None
    if rule is None or found is None:
        return None
    hosts = model.acl_hosts(rule.acl)
    if not hosts:
        return None
    body: Body = {"acl": found.id} | {m: rule.properties.get(m) for m in RULE_MEMBERS}
    return Computed(protocol.object_key(protocol.ACL_RULE, rule.id), body, frozenset(hosts))


def _rules_of(model: Model, acl_key: str) -> Keys:
    return model.rules_of_acl.get(acl_key, ())


ACL = ObjectKind(
    protocol.ACL,
    _acl,
    keys=lambda model: model.acls,
    shaped_by={Acl: lambda _, acl: (acl.key,)},
    follows={ACL_GROUP: lambda _, acl_key: (acl_key,)},
)
# A rule's body names its ACL by instanceId: the rules are recomputed when their ACL appears,
# vanishes or comes again under another id, not when only its default actions change.
ACL_RULE = ObjectKind(
    protocol.ACL_RULE,
    _rule,
    keys=lambda model: model.acl_rules,
    shaped_by={AclRule: lambda _, rule: (rule.key,)},
    follows={ACL_GROUP: _rules_of},
    names={Acl: _rules_of},
)
