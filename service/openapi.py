"""OpenAPI description of the service's own HTTP surface, served at GET /openapi.json.

Kept as data next to the code it describes; `tests/test_openapi.py` runs schemathesis
against a live server with it, so a status or body the description does not promise fails.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "required": ["code", "key", "message"],
    "properties": {
        "code": {"type": "integer"},
        "key": {"type": "string"},
        "message": {"type": "string"},
        "details": {"type": "string"},
        "request_id": {"type": "string"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "Error, in Voucherify's shape",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


EXPORT = {
    "type": "object",
    "required": ["id", "object", "created_at", "status", "exported_object", "parameters"],
    "properties": {
        "id": {"type": "string"},
        "object": {"type": "string", "enum": ["export"]},
        "created_at": {"type": "string"},
        "status": {"type": "string", "enum": ["SCHEDULED", "IN_PROGRESS", "DONE", "ERROR"]},
        "channel": {"type": "string"},
        "exported_object": {"type": "string"},
        "parameters": {"type": "object"},
        "result": {"type": "object", "nullable": True},
        "user_id": {"type": "string", "nullable": True},
    },
}

EXPORT_OBJECTS = ["order", "voucher", "publication", "redemption", "customer",
                  "points_expiration", "voucher_transactions"]  # fmt: skip
API_KEYS: list[dict[str, list[str]]] = [{"X-App-Id": [], "X-App-Token": []}]

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Voucherify webhook receiver",
        "version": "1",
        "description": "Signed Voucherify customer-activity webhooks into Postgres, and a "
        "Voucherify-compatible exports API over the stored data.",
    },
    "paths": {
        "/webhooks/voucherify": {
            "post": {
                "summary": "Receive one customer-activity event (either wire shape)",
                "parameters": [{
                    "name": "x-voucherify-signature",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "Lowercase hex HMAC-SHA256 of the compacted JSON body.",
                }],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["id", "type", "data"],
                        "properties": {
                            "id": {"type": "string"},
                            "type": {"type": "string"},
                            "data": {"type": "object"},
                            "created_at": {"type": "string"},
                            "group_id": {"type": "string"},
                            "event": {"type": "object"},
                        },
                    }}},
                },
                "responses": {
                    "202": {"description": "Stored (processed, unknown or quarantined)",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/Delivery"}}}},
                    "200": {"description": "Already stored (duplicate)",
                            "content": {"application/json": {"schema": {
                                "$ref": "#/components/schemas/Delivery"}}}},
                    **_errors(400, 401, 403, 408, 413, 415, 422, 431, 503),
                },
            }
        },
        "/healthz": {"get": {"summary": "The process is alive", "responses": {
            "200": {"description": "Alive", "content": {"application/json": {"schema": {
                "type": "object"}}}}}}},
        "/readyz": {"get": {"summary": "Postgres answers and the schema is at head",
                            "responses": {
            "200": {"description": "Ready", "content": {"application/json": {"schema": {
                "type": "object"}}}},
            "503": {"description": "Not ready", "content": {"application/json": {"schema": {
                "type": "object"}}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
            "200": {"description": "Text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/v1/exports": {
            "post": {
                "summary": "Schedule an export",
                "security": API_KEYS,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["exported_object"],
                    "properties": {
                        "exported_object": {"type": "string", "enum": EXPORT_OBJECTS},
                        "parameters": {"type": "object"},
                    },
                }}}},
                "responses": {
                    "200": {"description": "Scheduled", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Export"}}}},
                    **_errors(400, 401, 503),
                },
            },
            "get": {
                "summary": "List exports",
                "security": API_KEYS,
                "parameters": [
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "page", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100000}},
                    {"name": "order", "in": "query", "schema": {
                        "type": "string",
                        "enum": ["created_at", "-created_at", "status", "-status"]}},
                ],
                "responses": {
                    "200": {"description": "Exports", "content": {"application/json": {
                        "schema": {"type": "object",
                                   "required": ["object", "data_ref", "exports", "total"]}}}},
                    **_errors(400, 401, 503),
                },
            },
        },
        "/v1/exports/{export_id}": {
            "parameters": [{"name": "export_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "get": {
                "summary": "An export; with ?token= its CSV file",
                "security": API_KEYS,
                "parameters": [{"name": "token", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The export, or the CSV with a token",
                            "content": {
                                "application/json": {"schema": {
                                    "$ref": "#/components/schemas/Export"}},
                                "text/plain": {"schema": {"type": "string"}}}},
                    **_errors(401, 404, 409, 503),
                },
            },
            "delete": {
                "summary": "Delete an export and its file",
                "security": API_KEYS,
                "responses": {"204": {"description": "Deleted"}, **_errors(401, 404, 503)},
            },
        },
    },
    "components": {
        "schemas": {
            "Error": ERROR,
            "Export": EXPORT,
            "Delivery": {
                "type": "object",
                "required": ["event_id", "outcome"],
                "properties": {
                    "event_id": {"type": "string"},
                    "outcome": {"type": "string", "enum": [
                        "processed", "duplicate", "quarantined", "unknown"]},
                },
            },
        },
        "securitySchemes": {
            "X-App-Id": {"type": "apiKey", "in": "header", "name": "X-App-Id"},
            "X-App-Token": {"type": "apiKey", "in": "header", "name": "X-App-Token"},
        },
    },
}  # fmt: skip
