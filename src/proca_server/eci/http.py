"""The routes of the ECI build: /api with the signature page's schema, for anyone (no
credentials are read), and /private/api with the full schema for staff, who identify with
HTTP Basic or an API token (no JWT, no session cookie). Both use the transport of
graphql/http.py; no other GraphQL route (no websocket) is served."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from proca_server.app_state import state_of
from proca_server.auth.authenticate import AuthMethod
from proca_server.eci.schema import signature_page_schema
from proca_server.graphql.http import Endpoint, execute_request, graphql_options
from proca_server.graphql.schema import ProcaSchema
from proca_server.graphql.socket import lifespan as cross_process_events

STAFF_METHODS = AuthMethod.BASIC | AuthMethod.API_TOKEN


@dataclass(frozen=True)
class EciEndpoints:
    public: Endpoint
    private: Endpoint


def build_endpoints(full: ProcaSchema) -> EciEndpoints:
    """The public endpoint on the signature page's schema, built here; the private one on the
    app's full schema."""
    return EciEndpoints(
        public=Endpoint(signature_page_schema(), auth=None, explorer=False, websocket=False),
        private=Endpoint(
            full, auth=STAFF_METHODS, require_user=True, explorer=False, websocket=False
        ),
    )


def _endpoints(request: Request) -> EciEndpoints:
    endpoints = state_of(request).eci
    assert endpoints is not None  # the routes are mounted in the ECI build only
    return endpoints


# the socket's lifespan without its route: processing and topology changes still cross
# processes through PostgreSQL NOTIFY
router = APIRouter(lifespan=cross_process_events)


@router.api_route("/api", methods=["GET", "POST"])
async def public_api(request: Request) -> Response:
    return await execute_request(
        request, _endpoints(request).public, state_of(request).response_cache
    )


@router.api_route("/private/api", methods=["GET", "POST"])
async def private_api(request: Request) -> Response:
    # never the response cache: its answers are for anonymous callers
    return await execute_request(request, _endpoints(request).private, None)


router.add_api_route("/api", graphql_options, methods=["OPTIONS"])
router.add_api_route("/private/api", graphql_options, methods=["OPTIONS"])
