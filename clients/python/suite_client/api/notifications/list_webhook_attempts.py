from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote
from uuid import UUID

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.list_webhook_attempts_outcome import ListWebhookAttemptsOutcome
from ...models.notifications_problem import NotificationsProblem
from ...models.notifications_webhook_attempt_page import NotificationsWebhookAttemptPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    webhook_id: UUID,
    *,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    outcome: ListWebhookAttemptsOutcome | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(if_none_match, Unset):
        headers["If-None-Match"] = if_none_match

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    json_outcome: str | Unset = UNSET
    if not isinstance(outcome, Unset):
        json_outcome = outcome.value

    params["outcome"] = json_outcome

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/notifications/webhooks/{webhook_id}/attempts".format(
            webhook_id=quote(str(webhook_id), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage:
    if response.status_code == 200:
        response_200 = NotificationsWebhookAttemptPage.from_dict(response.json())

        return response_200

    if response.status_code == 304:
        response_304 = cast(Any, None)
        return response_304

    if response.status_code == 401:
        response_401 = NotificationsProblem.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = NotificationsProblem.from_dict(response.json())

        return response_404

    if response.status_code == 422:
        response_422 = NotificationsProblem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = GatewayProblem.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = NotificationsProblem.from_dict(response.json())

        return response_503

    if response.status_code == 504:
        response_504 = GatewayProblem.from_dict(response.json())

        return response_504

    response_default = NotificationsProblem.from_dict(response.json())

    return response_default


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    outcome: ListWebhookAttemptsOutcome | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage]:
    """Every POST to it, newest first: outcome, HTTP status, duration, next retry.

     `outcome=failed` (or `succeeded`) for one outcome only; pass `next_cursor` back as
    `cursor`. 404 for anyone else's endpoint.

    Args:
        webhook_id (UUID):
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        outcome (ListWebhookAttemptsOutcome | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        limit=limit,
        cursor=cursor,
        outcome=outcome,
        if_none_match=if_none_match,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    outcome: ListWebhookAttemptsOutcome | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage | None:
    """Every POST to it, newest first: outcome, HTTP status, duration, next retry.

     `outcome=failed` (or `succeeded`) for one outcome only; pass `next_cursor` back as
    `cursor`. 404 for anyone else's endpoint.

    Args:
        webhook_id (UUID):
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        outcome (ListWebhookAttemptsOutcome | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage
    """

    return sync_detailed(
        webhook_id=webhook_id,
        client=client,
        limit=limit,
        cursor=cursor,
        outcome=outcome,
        if_none_match=if_none_match,
    ).parsed


async def asyncio_detailed(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    outcome: ListWebhookAttemptsOutcome | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage]:
    """Every POST to it, newest first: outcome, HTTP status, duration, next retry.

     `outcome=failed` (or `succeeded`) for one outcome only; pass `next_cursor` back as
    `cursor`. 404 for anyone else's endpoint.

    Args:
        webhook_id (UUID):
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        outcome (ListWebhookAttemptsOutcome | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        limit=limit,
        cursor=cursor,
        outcome=outcome,
        if_none_match=if_none_match,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    outcome: ListWebhookAttemptsOutcome | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage | None:
    """Every POST to it, newest first: outcome, HTTP status, duration, next retry.

     `outcome=failed` (or `succeeded`) for one outcome only; pass `next_cursor` back as
    `cursor`. 404 for anyone else's endpoint.

    Args:
        webhook_id (UUID):
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        outcome (ListWebhookAttemptsOutcome | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | GatewayProblem | NotificationsProblem | NotificationsWebhookAttemptPage
    """

    return (
        await asyncio_detailed(
            webhook_id=webhook_id,
            client=client,
            limit=limit,
            cursor=cursor,
            outcome=outcome,
            if_none_match=if_none_match,
        )
    ).parsed
