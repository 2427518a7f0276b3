from http import HTTPStatus
from typing import Any, cast

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.notifications_notification_page import NotificationsNotificationPage
from ...models.notifications_problem import NotificationsProblem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    unread: bool | None | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(if_none_match, Unset):
        headers["If-None-Match"] = if_none_match

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    json_unread: bool | None | Unset
    if isinstance(unread, Unset):
        json_unread = UNSET
    else:
        json_unread = unread
    params["unread"] = json_unread

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/notifications",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem:
    if response.status_code == 200:
        response_200 = NotificationsNotificationPage.from_dict(response.json())

        return response_200

    if response.status_code == 304:
        response_304 = cast(Any, None)
        return response_304

    if response.status_code == 401:
        response_401 = NotificationsProblem.from_dict(response.json())

        return response_401

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
) -> Response[Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    unread: bool | None | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Response[Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem]:
    """Newest first; `unread=true` for unread only; pass `next_cursor` back as `cursor`.

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        unread (bool | None | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        unread=unread,
        if_none_match=if_none_match,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    unread: bool | None | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem | None:
    """Newest first; `unread=true` for unread only; pass `next_cursor` back as `cursor`.

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        unread (bool | None | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem
    """

    return sync_detailed(
        client=client,
        limit=limit,
        cursor=cursor,
        unread=unread,
        if_none_match=if_none_match,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    unread: bool | None | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Response[Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem]:
    """Newest first; `unread=true` for unread only; pass `next_cursor` back as `cursor`.

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        unread (bool | None | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        unread=unread,
        if_none_match=if_none_match,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    unread: bool | None | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem | None:
    """Newest first; `unread=true` for unread only; pass `next_cursor` back as `cursor`.

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        unread (bool | None | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | GatewayProblem | NotificationsNotificationPage | NotificationsProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            cursor=cursor,
            unread=unread,
            if_none_match=if_none_match,
        )
    ).parsed
