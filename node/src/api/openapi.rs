//! `GET /v1/openapi.json`: the HTTP API described in OpenAPI 3.0, for
//! operators' tools and generated clients. Written by hand next to the
//! router; `cli/tests/openapi.rs` fails when a route of the router is not
//! described here, or a described one does not answer.

use axum::Json;
use serde_json::{Value, json};

/// The document (the same for every node but its version).
pub(super) async fn document() -> Json<Value> {
    Json(describe())
}

fn stream_id() -> Value {
    json!({ "name": "id", "in": "path", "required": true,
            "description": "Stream id (letters, digits, `-`, `_`, `.`; up to 128), or `ID@PEERID` to pin one origin",
            "schema": { "type": "string" } })
}

fn error_answers() -> Value {
    json!({
        "400": { "$ref": "#/components/responses/Error" },
        "401": { "$ref": "#/components/responses/Error" },
        "403": { "$ref": "#/components/responses/Error" },
        "404": { "$ref": "#/components/responses/Error" },
        "409": { "$ref": "#/components/responses/Error" },
        "415": { "$ref": "#/components/responses/Error" },
        "503": { "$ref": "#/components/responses/Error" }
    })
}

/// An SDP offer as the request body.
fn sdp_body() -> Value {
    json!({ "required": true, "content": { "application/sdp": { "schema": { "type": "string" } } } })
}

/// 201 with an SDP answer and the session's `Location`, or the errors: 400
/// malformed SDP, 404 no such stream (WHEP), 409 already published (WHIP),
/// 413 too large, 415 not `application/sdp`, 422 nothing usable in the offer,
/// 429 over the token's session cap.
fn sdp_answers() -> Value {
    let mut all = error_answers();
    for code in ["413", "422", "429"] {
        all[code] = json!({ "$ref": "#/components/responses/Error" });
    }
    all["201"] = json!({
        "description": "The SDP answer; Location is the session (DELETE it to end)",
        "headers": { "Location": { "schema": { "type": "string" }, "description": "/v1/sessions/{session}" } },
        "content": { "application/sdp": { "schema": { "type": "string" } } }
    });
    all
}

/// A JSON answer `schema` under `code`, with the error answers.
fn answers(code: &str, description: &str, schema: Value) -> Value {
    let mut all = error_answers();
    all[code] = json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    all
}

fn body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn describe() -> Value {
    let object = json!({ "type": "object" });
    let no_token = json!([]);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Mafalda Swarm node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Publish RTP at any node of the swarm, find and take out any stream at any other. \
                            With --api-token every route but the probes and this document needs \
                            `Authorization: Bearer TOKEN`; JSON bodies need `content-type: application/json`. \
                            The WebSocket at /v1/rope carries the same operations and media objects as ROPE calls."
        },
        "servers": [{ "url": "http://127.0.0.1:7700" }],
        "security": [{ "bearer": [] }],
        "paths": {
            "/v1/status": { "get": {
                "summary": "This node: peer id, addresses, reachability, peers, workers, streams, egresses, pipes",
                "operationId": "status",
                "responses": answers("200", "The node's status", object.clone())
            }},
            "/v1/streams/{id}": { "get": {
                "summary": "Find a stream anywhere in the swarm: its origins, tracks and providers (hops, RTT, load)",
                "operationId": "find",
                "parameters": [stream_id()],
                "responses": answers("200", "The stream's providers", json!({ "$ref": "#/components/schemas/Found" }))
            }},
            "/v1/streams/{id}/rtp-ingest": {
                "put": {
                    "summary": "Publish a stream here from plain RTP: answers where to send it",
                    "operationId": "publish",
                    "parameters": [stream_id()],
                    "requestBody": body(json!({ "$ref": "#/components/schemas/Ingest" })),
                    "responses": answers("201", "Published; send the RTP to ip:port",
                        json!({ "type": "object", "required": ["ip", "port"],
                                "properties": { "ip": { "type": "string" }, "port": { "type": "integer" } } }))
                },
                "delete": {
                    "summary": "Stop publishing a stream published here (its end travels downstream)",
                    "operationId": "unpublish",
                    "parameters": [stream_id()],
                    "responses": { "204": { "description": "Unpublished" }, "404": { "$ref": "#/components/responses/Error" },
                                   "401": { "$ref": "#/components/responses/Error" }, "403": { "$ref": "#/components/responses/Error" } }
                }
            },
            "/v1/streams/{id}/rtp-egress": { "post": {
                "summary": "Take a stream out here as plain RTP to an address (piped from the cheapest provider)",
                "operationId": "consume",
                "parameters": [stream_id()],
                "requestBody": body(json!({ "$ref": "#/components/schemas/Egress" })),
                "responses": answers("201", "The egress: id, tracks, path through the swarm, SDP for receivers", object.clone())
            }},
            "/v1/streams/{id}/rtp-egress/{egress}": { "delete": {
                "summary": "Stop an egress",
                "operationId": "stopEgress",
                "parameters": [stream_id(), { "name": "egress", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "204": { "description": "Stopped" }, "404": { "$ref": "#/components/responses/Error" },
                               "401": { "$ref": "#/components/responses/Error" } }
            }},
            "/v1/streams/{id}/whip": {
                "post": {
                    "summary": "WHIP (RFC 9725): publish the tracks of an SDP offer as the stream; 201 with the SDP answer and the session's Location",
                    "operationId": "whip",
                    "parameters": [stream_id()],
                    "requestBody": sdp_body(),
                    "responses": sdp_answers()
                },
                "options": {
                    "summary": "What the endpoint accepts (Accept-Post: application/sdp); CORS preflight for allowed origins (no token)",
                    "operationId": "whipOptions",
                    "security": no_token.clone(),
                    "parameters": [stream_id()],
                    "responses": { "204": { "description": "Allow, Accept-Post and, for an allowed Origin, CORS headers" } }
                }
            },
            "/v1/streams/{id}/whep": {
                "post": {
                    "summary": "WHEP: play the stream (piped here from wherever it is) to an SDP offer; 201 with the SDP answer and the session's Location",
                    "operationId": "whep",
                    "parameters": [stream_id()],
                    "requestBody": sdp_body(),
                    "responses": sdp_answers()
                },
                "options": {
                    "summary": "What the endpoint accepts; CORS preflight for allowed origins (no token)",
                    "operationId": "whepOptions",
                    "security": no_token.clone(),
                    "parameters": [stream_id()],
                    "responses": { "204": { "description": "Allow, Accept-Post and CORS headers" } }
                }
            },
            "/v1/sessions/{session}": { "delete": {
                "summary": "End a WHIP or WHEP session (its owner or the admin); a WHIP session's stream ends with it. PATCH (trickle ICE) is answered 405: the node is ICE-lite and answers with all its candidates",
                "operationId": "endSession",
                "parameters": [{ "name": "session", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "204": { "description": "Ended" }, "401": { "$ref": "#/components/responses/Error" },
                               "403": { "$ref": "#/components/responses/Error" }, "404": { "$ref": "#/components/responses/Error" } }
            }},
            "/v1/swarm": { "get": {
                "summary": "The whole swarm as this node sees it, with no collector: every node (workers, CPU, streams with their role, clients, peers; health live/stale/lost and age) and every pipe as an edge {stream, from, to}",
                "operationId": "swarm",
                "responses": answers("200", "The swarm", object.clone())
            }},
            "/monitor": { "get": {
                "summary": "The swarm monitor page (HTML, built into the node): the swarm as a live graph, from swarm.watch on /v1/rope",
                "operationId": "monitor",
                "security": no_token.clone(),
                "responses": { "200": { "description": "The page (it asks for the token the API needs)",
                                        "content": { "text/html": { "schema": { "type": "string" } } } } }
            }},
            "/v1/rope": { "get": {
                "summary": "WebSocket upgrade to ROPE (CBOR, or JSON with ?format=json; ?access_token= for browsers)",
                "operationId": "rope",
                "parameters": [
                    { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["cbor", "json"] } },
                    { "name": "access_token", "in": "query", "schema": { "type": "string" } }
                ],
                "responses": { "101": { "description": "Switching to the WebSocket" }, "401": { "$ref": "#/components/responses/Error" } }
            }},
            "/v1/drain": { "post": {
                "summary": "Drain the node: downstream nodes move away without a gap, then it stops (admin token when one is set)",
                "operationId": "drain",
                "responses": { "202": { "description": "Draining" }, "401": { "$ref": "#/components/responses/Error" },
                               "403": { "$ref": "#/components/responses/Error" } }
            }},
            "/metrics": { "get": {
                "summary": "Prometheus metrics: streams, workers, peers, control-plane bytes, finds, ROPE calls",
                "operationId": "metrics",
                "responses": { "200": { "description": "OpenMetrics text",
                                        "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } },
                               "401": { "$ref": "#/components/responses/Error" } }
            }},
            "/healthz": { "get": {
                "summary": "200 while the process serves (no token)",
                "operationId": "healthz",
                "security": no_token.clone(),
                "responses": { "200": { "description": "Serving" } }
            }},
            "/readyz": { "get": {
                "summary": "200 when workers run, the swarm is joined and the node is not draining; else 503 with the reason (no token)",
                "operationId": "readyz",
                "security": no_token.clone(),
                "responses": { "200": { "description": "Ready" }, "503": { "description": "Not ready, and why" } }
            }},
            "/v1/openapi.json": { "get": {
                "summary": "This document (no token)",
                "operationId": "openapi",
                "security": no_token,
                "responses": { "200": { "description": "OpenAPI 3.0", "content": { "application/json": { "schema": object } } } }
            }}
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "responses": {
                "Error": { "description": "Refused, with the reason",
                           "content": { "application/json": { "schema": {
                               "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } } } } }
            },
            "schemas": {
                "Track": { "type": "object", "required": ["kind", "codec", "payloadType", "ssrc"], "properties": {
                    "kind": { "type": "string", "enum": ["audio", "video"] },
                    "codec": { "type": "string", "enum": ["opus", "vp8", "h264"] },
                    "payloadType": { "type": "integer", "minimum": 0, "maximum": 127 },
                    "ssrc": { "type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64 } } },
                "Ingest": { "type": "object", "required": ["tracks"], "properties": {
                    "tracks": { "type": "array", "minItems": 1, "items": { "$ref": "#/components/schemas/Track" } },
                    "source": { "type": "string", "description": "IP:PORT the RTP comes from; packets from elsewhere are dropped" } } },
                "Egress": { "type": "object", "required": ["ip", "port"], "properties": {
                    "ip": { "type": "string" },
                    "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                    "ports": { "type": "array", "items": { "type": "integer" }, "description": "One port per track instead of port" } } },
                "Found": { "type": "object", "properties": {
                    "stream": { "type": "string" },
                    "origins": { "type": "array", "items": { "type": "string" } },
                    "tracks": { "type": "array", "items": { "type": "object" } },
                    "providers": { "type": "array", "items": { "type": "object", "properties": {
                        "peer": { "type": "string" }, "origin": { "type": "string" }, "hops": { "type": "integer" },
                        "rttMs": { "type": "number" }, "load": { "type": "number" },
                        "path": { "type": "array", "items": { "type": "string" } } } } } } }
            }
        }
    })
}
