"""py-path-guard: an MTE Relay filter adapter written in Python.

Refuses requests whose path starts with one of the configured prefixes (403 with a
JSON body), counts refusals per prefix in the adapter's key-value store, and tags
every allowed request with an upstream header.

Config: {"deny_prefixes": ["/admin"], "tag_header": "x-path-guard"}
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import kv, log, types


class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> types.FilterHooks:
        try:
            settings = json.loads(config) or {}
        except ValueError as e:
            raise Err(f"invalid config: {e}")
        prefixes = settings.get("deny_prefixes", [])
        if not isinstance(prefixes, list) or not all(isinstance(p, str) and p.startswith("/") for p in prefixes):
            raise Err("invalid config: deny_prefixes must be a list of paths starting with '/'")
        global DENY, TAG
        DENY = prefixes
        TAG = settings.get("tag_header", "x-path-guard")
        # Only requests are guarded (by path): the relay need not call on_response,
        # nor copy any header into the component.
        return types.FilterHooks(on_response=False, request_headers=[])

    def on_request(self, request: types.RequestInfo) -> types.RequestAction:
        path = request.path_with_query.split("?", 1)[0]
        for prefix in DENY:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                count = kv.increment(f"denied:{prefix}", 1, None)
                log.log(log.Level.INFO, f"denied {request.method} {path} (prefix {prefix}, {count} so far)")
                body = json.dumps({"error": "forbidden", "prefix": prefix}).encode()
                return types.RequestAction_Respond(
                    types.LocalResponse(
                        status=403,
                        headers=[types.Header(name="content-type", value="application/json")],
                        body=body,
                    )
                )
        return types.RequestAction_Continue([types.HeaderEdit_Set(types.Header(name=TAG, value="allowed"))])

    def on_response(self, request: types.RequestInfo, response: types.ResponseInfo) -> list:
        return []


DENY: list = []
TAG: str = "x-path-guard"
