"""What the SDK checks share: the failure report and the weather tool's JSON Schema."""
import sys

WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def check(condition, message):
    """Prints the failure and exits non-zero unless `condition` holds."""
    if not condition:
        print("FAIL: " + message)
        sys.exit(1)
