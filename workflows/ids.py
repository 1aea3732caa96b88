"""Workflow IDs, built from business keys and documented in the README.

They are for addressing only: workflows carry round and organisation as explicit fields and
search attributes, and nothing parses these strings back.
"""

from __future__ import annotations


def round_workflow_id(round_id: str) -> str:
    """``round/<round_id>``: the county office's kick-off of one round."""
    return f"round/{round_id}"


def organisation_workflow_id(round_id: str, org_id: str) -> str:
    """``campaign/<round_id>/<org_id>``: one organisation in one round."""
    return f"campaign/{round_id}/{org_id}"
