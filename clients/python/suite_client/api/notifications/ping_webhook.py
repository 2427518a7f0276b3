from http import HTTPStatus
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.notifications_delivery import NotificationsDelivery
from ...models.notifications_problem import NotificationsProblem
from ...types import Response


def _get_kwargs(
    webhook_id: UUID,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/notifications/webhooks/{webhook_id}/ping".format(
            webhook_id=quote(str(webhook_id), safe=""),
        ),
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> GatewayProblem | NotificationsDelivery | NotificationsProblem:
    if response.status_code == 202:
        response_202 = NotificationsDelivery.from_dict(response.json())

        return response_202

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
) -> Response[GatewayProblem | NotificationsDelivery | NotificationsProblem]:
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
) -> Response[GatewayProblem | NotificationsDelivery | NotificationsProblem]:
    """Queue a signed `webhook.ping` event, tried once; its outcome shows in the attempts.

     Disabled endpoints get it too, to tell whether they are back. 404 for anyone else's.

    Args:
        webhook_id (UUID):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | NotificationsDelivery | NotificationsProblem]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
) -> GatewayProblem | NotificationsDelivery | NotificationsProblem | None:
    """Queue a signed `webhook.ping` event, tried once; its outcome shows in the attempts.

     Disabled endpoints get it too, to tell whether they are back. 404 for anyone else's.

    Args:
        webhook_id (UUID):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | NotificationsDelivery | NotificationsProblem
    """

    return sync_detailed(
        webhook_id=webhook_id,
        client=client,
    ).parsed


async def asyncio_detailed(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
) -> Response[GatewayProblem | NotificationsDelivery | NotificationsProblem]:
    """Queue a signed `webhook.ping` event, tried once; its outcome shows in the attempts.

     Disabled endpoints get it too, to tell whether they are back. 404 for anyone else's.

    Args:
        webhook_id (UUID):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | NotificationsDelivery | NotificationsProblem]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    webhook_id: UUID,
    *,
    client: AuthenticatedClient,
) -> GatewayProblem | NotificationsDelivery | NotificationsProblem | None:
    """Queue a signed `webhook.ping` event, tried once; its outcome shows in the attempts.

     Disabled endpoints get it too, to tell whether they are back. 404 for anyone else's.

    Args:
        webhook_id (UUID):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | NotificationsDelivery | NotificationsProblem
    """

    return (
        await asyncio_detailed(
            webhook_id=webhook_id,
            client=client,
        )
    ).parsed
