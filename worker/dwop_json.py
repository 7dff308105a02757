"""JSON without importing json (which imports re): the C scanner and encoder only."""

import _json


def parse_json(text):
    """json.loads without importing json (and re); raises ValueError."""

    class Context:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = float
        memo = {}

    try:
        value, end = _json.make_scanner(Context)(text, 0)
    except StopIteration as e:
        raise ValueError("invalid JSON at character %s" % e.value) from None
    if text[end:].strip():
        raise ValueError("extra data after JSON at character %d" % end)
    return value
