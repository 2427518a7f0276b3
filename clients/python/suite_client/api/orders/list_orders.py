from http import HTTPStatus
from typing import Any, cast

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.list_orders_status import ListOrdersStatus
from ...models.orders_order_page import OrdersOrderPage
from ...models.orders_problem import OrdersProblem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    status: ListOrdersStatus | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(if_none_match, Unset):
        headers["If-None-Match"] = if_none_match

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    json_status: str | Unset = UNSET
    if not isinstance(status, Unset):
        json_status = status.value

    params["status"] = json_status

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/orders",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | GatewayProblem | OrdersOrderPage | OrdersProblem:
    if response.status_code == 200:
        response_200 = OrdersOrderPage.from_dict(response.json())

        return response_200

    if response.status_code == 304:
        response_304 = cast(Any, None)
        return response_304

    if response.status_code == 401:
        response_401 = OrdersProblem.from_dict(response.json())

        return response_401

    if response.status_code == 422:
        response_422 = OrdersProblem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = GatewayProblem.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = OrdersProblem.from_dict(response.json())

        return response_503

    if response.status_code == 504:
        response_504 = GatewayProblem.from_dict(response.json())

        return response_504

    response_default = OrdersProblem.from_dict(response.json())

    return response_default


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Any | GatewayProblem | OrdersOrderPage | OrdersProblem]:
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
    status: ListOrdersStatus | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Response[Any | GatewayProblem | OrdersOrderPage | OrdersProblem]:
    """List orders newest first, `limit` (1-100, default 20) per page.

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        status (ListOrdersStatus | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | GatewayProblem | OrdersOrderPage | OrdersProblem]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        status=status,
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
    status: ListOrdersStatus | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Any | GatewayProblem | OrdersOrderPage | OrdersProblem | None:
    """List orders newest first, `limit` (1-100, default 20) per page.

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        status (ListOrdersStatus | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | GatewayProblem | OrdersOrderPage | OrdersProblem
    """

    return sync_detailed(
        client=client,
        limit=limit,
        cursor=cursor,
        status=status,
        if_none_match=if_none_match,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    status: ListOrdersStatus | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Response[Any | GatewayProblem | OrdersOrderPage | OrdersProblem]:
    """List orders newest first, `limit` (1-100, default 20) per page.

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        status (ListOrdersStatus | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | GatewayProblem | OrdersOrderPage | OrdersProblem]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        status=status,
        if_none_match=if_none_match,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    status: ListOrdersStatus | Unset = UNSET,
    if_none_match: str | Unset = UNSET,
) -> Any | GatewayProblem | OrdersOrderPage | OrdersProblem | None:
    """List orders newest first, `limit` (1-100, default 20) per page.

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        status (ListOrdersStatus | Unset):
        if_none_match (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | GatewayProblem | OrdersOrderPage | OrdersProblem
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            cursor=cursor,
            status=status,
            if_none_match=if_none_match,
        )
    ).parsed
