"""Natural JSON <-> Python values for the Avro peers (shared by avro_produce.py and avro_consume.py).

The fixtures write NaN and infinities as the strings "NaN", "Infinity", "-Infinity" (JSON has no such
numbers); fastavro wants Python floats. Conversion is guided by the schema, so a string field that
happens to hold "NaN" stays a string.
"""
import math

SPECIAL = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _named(schema, names):
    if isinstance(schema, dict) and "name" in schema:
        names[schema["name"]] = schema
    return names


def to_python(value, schema, names=None):
    """Turn a natural-JSON value into what fastavro expects for `schema`."""
    names = {} if names is None else names
    if isinstance(schema, str):
        if schema in ("float", "double"):
            if isinstance(value, str) and value in SPECIAL:
                return SPECIAL[value]
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        if schema in names:
            return to_python(value, names[schema], names)
        return value
    if isinstance(schema, list):
        if value is None:
            return None
        for branch in schema:
            if branch == "null":
                continue
            t = branch if isinstance(branch, str) else branch.get("type")
            if t in ("float", "double") and (isinstance(value, (int, float)) or value in SPECIAL):
                return to_python(value, branch, names)
            if t not in ("float", "double"):
                return to_python(value, branch, names)
        return value
    t = schema.get("type")
    _named(schema, names)
    if t == "record":
        return {f["name"]: to_python(value.get(f["name"]), f["type"], names) for f in schema["fields"]
                if f["name"] in value}
    if t == "array":
        return [to_python(v, schema["items"], names) for v in value]
    if t == "map":
        return {k: to_python(v, schema["values"], names) for k, v in value.items()}
    return to_python(value, t, names) if isinstance(t, str) and t in ("float", "double") else value


def to_json(value):
    """Python value read by fastavro -> natural JSON (non-finite floats as strings)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value
