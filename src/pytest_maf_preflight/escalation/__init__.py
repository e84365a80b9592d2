"""Escalations (SPEC S4): failures that meet a path's triggers reach someone, level by level.

- ``channels``: delivering a notice to a target (mailbox, webhook, command, agent_mail).
- ``triggers``: trigger conditions evaluated against the recorded history.
- ``engine``: opening, deduplicating, advancing, acknowledging and resolving escalations.
- ``permissions``: who may acknowledge, resolve, or escalate to which targets.
- ``messages``: the texts escalations carry and show.

Nothing here is imported by the plugin unless escalations are in use.
"""
