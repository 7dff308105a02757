"""JSON without importing json (which imports re): the C scanner and encoder only."""

import _json


class _Context:
    """What json.JSONDecoder gives the C scanner: strict, plain dicts, floats and ints."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo = {}


# One scanner for every call (it clears its memo after each): a class and a scanner made per call cost a
# forked worker ~40 us and a few page faults each time, six times a run.
_scan = _json.make_scanner(_Context)


def parse_json(text):
    """json.loads without importing json (and re); raises ValueError."""
    try:
        value, end = _scan(text, 0)
    except StopIteration as e:
        raise ValueError("invalid JSON at character %s" % e.value) from None
    except SystemError:
        # The C scanner reports most errors (an unterminated object or string, a missing name) with
        # json.decoder's JSONDecodeError, which it looks up in sys.modules and never imports: without that
        # module, a SystemError. Only on this path is it imported, for the error the scanner meant.
        import json

        return json.loads(text)  # raises that JSONDecodeError, a ValueError
    if text[end:].strip():
        raise ValueError("extra data after JSON at character %d" % end)
    return value
