"""``GET /v1/models`` and ``GET /v1/models/{id}``: the routed agent (``fleetmind``) and every expert."""

from __future__ import annotations

from fastapi import APIRouter, Request

from fleetmind.gateway.deps import Authorization, Locator
from fleetmind.gateway.errors import ModelNotFoundError, documented
from fleetmind.gateway.schemas import ModelCard, ModelList

router = APIRouter(tags=["models"])


def _card(request: Request, model_id: str) -> ModelCard:
    return ModelCard(id=model_id, created=request.app.state.started)


@router.get("/models", response_model=ModelList, responses=documented(401, 429))
async def list_models(request: Request, _: Authorization, locator: Locator) -> ModelList:
    """Lists the models a chat request may name."""
    return ModelList(data=[_card(request, m) for m in await locator.models()])


@router.get("/models/{model_id:path}", response_model=ModelCard, responses=documented(401, 404, 429))
async def retrieve_model(model_id: str, request: Request, _: Authorization, locator: Locator) -> ModelCard:
    """One model, or 404 listing the ones that exist."""
    known = await locator.models()
    if model_id not in known:
        raise ModelNotFoundError(model_id, known)
    return _card(request, model_id)
