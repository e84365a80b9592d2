"""Escalations (SPEC S4): failures that meet a path's triggers reach someone, level by level.

- ``channels``: delivering a notice to a target (mailbox, webhook, command, agent_mail).
- ``triggers``: trigger conditions evaluated against the recorded history.
- ``engine``: opening, deduplicating, advancing, acknowledging and resolving escalations.
- ``permissions``: who may acknowledge, resolve, or escalate to which targets.
- ``session``: the paths a gate run uses, and the engine for a run or a test.

Nothing here is imported unless the gate runs (it ticks every run) or a test escalates.
"""
