from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote
from uuid import UUID

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.notifications_problem import NotificationsProblem
from ...models.notifications_webhook import NotificationsWebhook
from ...types import UNSET, Response, Unset


def _get_kwargs(
    webhook_id: UUID,
    *,
    if_none_match: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(if_none_match, Unset):
        headers["If-None-Match"] = if_none_match

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/notifications/webhooks/{webhook_id}".format(
            webhook_id=quote(str(webhook_id), safe=""),
        ),
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | GatewayProblem | NotificationsProblem | NotificationsWebhook:
    if response.status_code == 200:
        response_200 = NotificationsWebhook.from_dict(response.json())

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
) -> Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhook]:
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
    if_none_match: str | Unset = UNSET,
) -> Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhook]:
    """The endpoint, whether it is enabled, and how its rotation stands. 404 for others'.

    Args:
        webhook_id (UUID):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhook]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
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
    if_none_match: str | Unset = UNSET,
) -> Any | GatewayProblem | NotificationsProblem | NotificationsWebhook | None:
    """The endpoint, whether it is enabled, and how its rotation stands. 404 for others'.

    Args:
        webhook_id (UUID):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | GatewayProblem | NotificationsProblem | NotificationsWebhook
    """

    return sync_detailed(
        webhook_id=webhook_id,
        client=client,
        if_none_match=if_none_match,
    ).parsed


async def asyncio_detailed(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    if_none_match: str | Unset = UNSET,
) -> Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhook]:
    """The endpoint, whether it is enabled, and how its rotation stands. 404 for others'.

    Args:
        webhook_id (UUID):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | GatewayProblem | NotificationsProblem | NotificationsWebhook]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        if_none_match=if_none_match,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    if_none_match: str | Unset = UNSET,
) -> Any | GatewayProblem | NotificationsProblem | NotificationsWebhook | None:
    """The endpoint, whether it is enabled, and how its rotation stands. 404 for others'.

    Args:
        webhook_id (UUID):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | GatewayProblem | NotificationsProblem | NotificationsWebhook
    """

    return (
        await asyncio_detailed(
            webhook_id=webhook_id,
            client=client,
            if_none_match=if_none_match,
        )
    ).parsed
