"""Evaluates flags through OpenFeature's Python SDK and the official OFREP provider, against a
Rollgate relay, and prints one JSON line per case. Used by tests/relay_clients.rs.

    python evaluate.py BASE_URL CASES.json

CASES.json: [{"key": "...", "user": "..." | null, "type": "boolean" | "string",
              "attributes": {"name": string | number | boolean | [string]}}]
(`attributes` optional; a user of null sends no targetingKey.)
"""

import json
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: evaluate.py BASE_URL CASES.json")
    base_url, cases_file = sys.argv[1:]
    with open(cases_file, encoding="utf-8") as f:
        cases = json.load(f)
    api.set_provider(OFREPProvider(base_url=base_url))
    client = api.get_client()
    for case in cases:
        user = case["user"]
        attributes = case.get("attributes", {})
        if "targetingKey" in attributes:
            sys.exit(f"case {case['key']}: an attribute named targetingKey would replace the user")
        context = EvaluationContext(targeting_key=user, attributes=attributes)
        if case["type"] == "boolean":
            details = client.get_boolean_details(case["key"], False, context)
        else:
            details = client.get_string_details(case["key"], "", context)
        print(
            json.dumps(
                {
                    "key": case["key"],
                    "user": user,
                    "value": details.value,
                    "variant": details.variant,
                    "reason": str(details.reason.value if hasattr(details.reason, "value") else details.reason)
                    if details.reason is not None
                    else None,
                    "errorCode": details.error_code.value if details.error_code is not None else None,
                    "metadata": dict(details.flag_metadata),
                }
            )
        )


if __name__ == "__main__":
    main()
