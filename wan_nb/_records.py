"""What every public record's ``to_dict()`` returns: JSON-native data.

``json.loads(json.dumps(record.to_dict())) == record.to_dict()`` must hold, so tuples
become lists (recursively) and anything else JSON cannot carry is refused loudly by the
test suite rather than changed silently here.
"""

from __future__ import annotations

from typing import Any


def json_native(value: Any) -> Any:
    """Tuples as lists, dict keys as strings, recursively: what a JSON round trip gives back."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: json_native(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_native(v) for v in value]
    return value
