from http import HTTPStatus
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.notifications_problem import NotificationsProblem
from ...models.notifications_webhook_recover import NotificationsWebhookRecover
from ...models.notifications_webhook_recovered import NotificationsWebhookRecovered
from ...types import Response


def _get_kwargs(
    webhook_id: UUID,
    *,
    body: NotificationsWebhookRecover,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/notifications/webhooks/{webhook_id}/recover".format(
            webhook_id=quote(str(webhook_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered:
    if response.status_code == 202:
        response_202 = NotificationsWebhookRecovered.from_dict(response.json())

        return response_202

    if response.status_code == 400:
        response_400 = NotificationsProblem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = NotificationsProblem.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = NotificationsProblem.from_dict(response.json())

        return response_404

    if response.status_code == 413:
        response_413 = NotificationsProblem.from_dict(response.json())

        return response_413

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
) -> Response[GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered]:
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
    body: NotificationsWebhookRecover,
) -> Response[GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered]:
    """Queue every event since `since` that the endpoint did not get, once each.

     Enables the endpoint if it was disabled. What was sent, or is being sent, is not
    sent again: calling it twice is safe. 404 for anyone else's endpoint.

    Args:
        webhook_id (UUID):
        body (NotificationsWebhookRecover):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    body: NotificationsWebhookRecover,
) -> GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered | None:
    """Queue every event since `since` that the endpoint did not get, once each.

     Enables the endpoint if it was disabled. What was sent, or is being sent, is not
    sent again: calling it twice is safe. 404 for anyone else's endpoint.

    Args:
        webhook_id (UUID):
        body (NotificationsWebhookRecover):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered
    """

    return sync_detailed(
        webhook_id=webhook_id,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    body: NotificationsWebhookRecover,
) -> Response[GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered]:
    """Queue every event since `since` that the endpoint did not get, once each.

     Enables the endpoint if it was disabled. What was sent, or is being sent, is not
    sent again: calling it twice is safe. 404 for anyone else's endpoint.

    Args:
        webhook_id (UUID):
        body (NotificationsWebhookRecover):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
    body: NotificationsWebhookRecover,
) -> GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered | None:
    """Queue every event since `since` that the endpoint did not get, once each.

     Enables the endpoint if it was disabled. What was sent, or is being sent, is not
    sent again: calling it twice is safe. 404 for anyone else's endpoint.

    Args:
        webhook_id (UUID):
        body (NotificationsWebhookRecover):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | NotificationsProblem | NotificationsWebhookRecovered
    """

    return (
        await asyncio_detailed(
            webhook_id=webhook_id,
            client=client,
            body=body,
        )
    ).parsed
