from http import HTTPStatus
from typing import Any

import httpx

from ...client import AuthenticatedClient, Client
from ...models.gateway_problem import GatewayProblem
from ...models.orders_problem import OrdersProblem
from ...models.orders_product_page import OrdersProductPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    active: bool | Unset = True,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    params["active"] = active

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/products",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> GatewayProblem | OrdersProblem | OrdersProductPage:
    if response.status_code == 200:
        response_200 = OrdersProductPage.from_dict(response.json())

        return response_200

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
) -> Response[GatewayProblem | OrdersProblem | OrdersProductPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    active: bool | Unset = True,
) -> Response[GatewayProblem | OrdersProblem | OrdersProductPage]:
    """List the products on sale newest first (anyone; `active=false`: the withdrawn ones).

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        active (bool | Unset):  Default: True.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | OrdersProblem | OrdersProductPage]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        active=active,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    active: bool | Unset = True,
) -> GatewayProblem | OrdersProblem | OrdersProductPage | None:
    """List the products on sale newest first (anyone; `active=false`: the withdrawn ones).

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        active (bool | Unset):  Default: True.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | OrdersProblem | OrdersProductPage
    """

    return sync_detailed(
        client=client,
        limit=limit,
        cursor=cursor,
        active=active,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    active: bool | Unset = True,
) -> Response[GatewayProblem | OrdersProblem | OrdersProductPage]:
    """List the products on sale newest first (anyone; `active=false`: the withdrawn ones).

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        active (bool | Unset):  Default: True.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[GatewayProblem | OrdersProblem | OrdersProductPage]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        active=active,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    limit: int | Unset = 20,
    cursor: Any | Unset = UNSET,
    active: bool | Unset = True,
) -> GatewayProblem | OrdersProblem | OrdersProductPage | None:
    """List the products on sale newest first (anyone; `active=false`: the withdrawn ones).

    Args:
        limit (int | Unset):  Default: 20.
        cursor (Any | Unset):
        active (bool | Unset):  Default: True.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        GatewayProblem | OrdersProblem | OrdersProductPage
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            cursor=cursor,
            active=active,
        )
    ).parsed
