"""What the caller may use: /v1/models, /openai/v1/models and /models/info; and the
surfaces the gateway deliberately does not serve. Each API's own routes are in its
adapter module (`gateway.apis`)."""

from __future__ import annotations

from aiohttp import web

from gateway.apis import APIS
from gateway.core.errors import UnsupportedOperation
from gateway.core.flow import FLOW
from gateway.core.replies import json_response
from gateway.http.inbound import model_name
from gateway.runtime.live import LIVE
from gateway.translate import way
from gateway.upstream.routing import Deployment

MODEL_LISTS = ("/v1/models", "/openai/v1/models")
MODEL_INFO = "/models/info"

# Surfaces the gateway deliberately does not serve, and how to name them to the caller.
UNSUPPORTED = {
    "batches": "the Batch API",
    "files": "the Files API",
    "uploads": "the Uploads API",
    "assistants": "the Assistants API",
    "threads": "the Assistants API (threads)",
    "vector_stores": "vector stores",
    "realtime": "the Realtime API",
    "fine_tuning": "fine-tuning",
    "moderations": "the moderation endpoint",
    "extensions": "Azure OpenAI extensions",
}
UNSUPPORTED_PREFIXES = ("/v1", "/openai/v1", "/openai", "/openai/deployments/{deployment}")



def _model(deployment: Deployment) -> dict[str, object]:
    """An OpenAI model object, with the APIs the alias serves: `apis` by name, and
    `serves` saying for each whether a backend speaks it natively or the gateway
    translates it (native wins when some backend has it)."""
    serves: dict[str, str] = {}
    for api in APIS:
        ways = [way(api.operation, b.urls) for b in deployment.backends]
        if api.operation in ways:
            serves[api.name] = "native"
        elif any(w is not None for w in ways):
            serves[api.name] = "translated"
    return {"id": deployment.name, "object": "model", "created": 0, "owned_by": "model-gateway",
            "apis": list(serves), "serves": [{"api": k, "how": v} for k, v in serves.items()]}


async def list_models(request: web.Request) -> web.Response:
    runtime = request.app[LIVE].runtime
    caller = await runtime.authenticator.authenticate(request.headers)
    request[FLOW].consumer = caller.consumer
    return json_response({"object": "list",
                  "data": [_model(runtime.deployments[a]) for a in runtime.allowed(caller)]})


async def get_model(request: web.Request) -> web.Response:
    runtime = request.app[LIVE].runtime
    caller = await runtime.authenticator.authenticate(request.headers)
    request[FLOW].consumer = caller.consumer
    return json_response(_model(runtime.resolve(request.match_info["model"], caller)))


async def model_info(request: web.Request) -> web.Response:
    runtime = request.app[LIVE].runtime
    caller = await runtime.authenticator.authenticate(request.headers)
    ex = request[FLOW]
    ex.consumer = caller.consumer
    alias = request.query.get("model") or model_name({}, request.headers, None, True)
    deployment = runtime.resolve(alias, caller)
    ex.deployment = deployment.name
    config = deployment.config
    return json_response(
        {
            "model_name": config.model,
            "model_type": config.model_type,
            "model_provider_name": config.provider,
        }
    )


async def unsupported(request: web.Request) -> web.Response:
    what = UNSUPPORTED[request.match_info["surface"]]
    raise UnsupportedOperation(
        f"Model Gateway does not support {what} ({request.path}). It serves chat completions, "
        "completions, embeddings, the Responses API, Anthropic's Messages API, images "
        "(generations, edits) and audio (transcriptions, translations, speech); call the "
        "service directly for anything else."
    )

